// Token + position embedding (llm.c's encoder_forward / encoder_backward).
//
// The backward pass into dwte is a scatter-add (many positions share a token) and
// must be deterministic without float atomics. It first sorts the B*T positions by
// token with a stable LSD radix sort (8-bit digits, 2 passes for V <= 65536: count per
// block, scan, scatter with in-block ranks), so each token's positions lie together in
// increasing order; then the first invocation of each run of equal tokens sums its
// rows of dout in that order and adds them to dwte. Work is O(B*T*(C + 256)) whatever
// V is (for V = 50257, B*T = 8192, C = 768: ~6M adds in 8 dispatches), where one
// invocation per (token, channel) scanning every position would be V*C*B*T = 3e11.

override B: u32 = 1;
override T: u32 = 1;
override C: u32 = 1;
override WG: u32 = 256;       // invocations per workgroup (elementwise kernels)
override SHIFT: u32 = 0;      // sort: bit offset of this pass's 8-bit digit
override FIRST: bool = true;  // sort: first pass (keys are the token ids, values the positions)
override BLOCKS: u32 = 1;     // sort: ceil(B*T / 256) blocks of 256 positions

const SORT_WG: u32 = 256u;    // positions per sort block (= digit values)

fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// ---- forward ----

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> inp: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<f32>;
@group(0) @binding(3) var<storage, read> wpe: array<f32>;

// out is (B,T,C); inp is (B,T) token ids; wte is (V,C); wpe is (maxT,C).
// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]. One invocation per element of out.
@compute @workgroup_size(WG)
fn encoder_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= B * T * C) {
    return;
  }
  let bt = i / C;
  let c = i % C;
  out[i] = wte[inp[bt] * C + c] + wpe[(bt % T) * C + c];
}

// ---- backward: dwpe ----

@group(0) @binding(0) var<storage, read_write> dwpe: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;

// dwpe is (maxT,C); dout is (B,T,C). dwpe[t,c] += sum over b (in order) of dout[b,t,c].
// One invocation per (t, c).
@compute @workgroup_size(WG)
fn encoder_backward_wpe(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= T * C) {
    return;
  }
  var s = 0.0;
  for (var b = 0u; b < B; b++) {
    s += dout[b * T * C + i];
  }
  dwpe[i] += s;
}

// ---- backward: stable radix sort of positions by token ----
// All sort state lives in one scratch binding (WebGPU forbids binding one buffer as
// writable and anything else in the same dispatch, even disjoint ranges): key and
// value buffers 0 and 1 and the (256, BLOCKS) digit counts, at these u32 offsets.

override KEYS0: u32 = 0;
override VALS0: u32 = 0;
override KEYS1: u32 = 0;
override VALS1: u32 = 0;
override HIST: u32 = 0;
override SRC: u32 = 0;        // sort: buffer (0 or 1) this pass reads unless FIRST; it writes the other

@group(0) @binding(0) var<storage, read_write> sort: array<u32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;

var<workgroup> digits: array<u32, SORT_WG>;
var<workgroup> sums: array<u32, SORT_WG>;

fn src_key(i: u32) -> u32 {
  if (FIRST) {
    return tokens[i];
  }
  return sort[select(KEYS0, KEYS1, SRC == 1u) + i];
}

fn digit(key: u32) -> u32 {
  return (key >> SHIFT) & 255u;
}

// sort holds the keys (the token ids, tokens (B*T), on the first pass) and hist (256, BLOCKS).
// hist[d, blk] = how many of block blk's keys have digit d. Grid: (BLOCKS).
@compute @workgroup_size(SORT_WG)
fn encoder_sort_count(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x * SORT_WG + lid;
  var d = SORT_WG;  // past the end: matches no digit
  if (i < B * T) {
    d = digit(src_key(i));
  }
  digits[lid] = d;
  workgroupBarrier();
  var n = 0u;
  for (var j = 0u; j < SORT_WG; j++) {
    n += u32(digits[j] == lid);
  }
  sort[HIST + lid * BLOCKS + wid.x] = n;
}

// hist (256 * BLOCKS counts in sort) is replaced by its exclusive prefix sums
// (digit-major, so each (digit, block) gets where it starts in the sorted order).
// One workgroup: each invocation scans a contiguous span.
@compute @workgroup_size(SORT_WG)
fn encoder_sort_scan(@builtin(local_invocation_index) lid: u32) {
  let total = SORT_WG * BLOCKS;
  let span = (total + SORT_WG - 1u) / SORT_WG;
  let begin = min(total, lid * span);
  let end = min(total, begin + span);
  var s = 0u;
  for (var j = begin; j < end; j++) {
    s += sort[HIST + j];
  }
  sums[lid] = s;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0u;
    for (var j = 0u; j < SORT_WG; j++) {
      let v = sums[j];
      sums[j] = run;
      run += v;
    }
  }
  workgroupBarrier();
  var run = sums[lid];
  for (var j = begin; j < end; j++) {
    let v = sort[HIST + j];
    sort[HIST + j] = run;
    run += v;
  }
}

// Moves each (key, value) of buffer SRC (or (token, position) when FIRST) into the other
// buffer at hist[digit, block] + its rank among the block's earlier keys with the same
// digit: stable, so positions stay in increasing order per token. Grid: (BLOCKS).
@compute @workgroup_size(SORT_WG)
fn encoder_sort_scatter(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x * SORT_WG + lid;
  var d = SORT_WG;
  var key = 0u;
  var val = i;
  if (i < B * T) {
    key = src_key(i);
    if (!FIRST) {
      val = sort[select(VALS0, VALS1, SRC == 1u) + i];
    }
    d = digit(key);
  }
  digits[lid] = d;
  workgroupBarrier();
  if (i < B * T) {
    var rank = 0u;
    for (var j = 0u; j < lid; j++) {
      rank += u32(digits[j] == d);
    }
    let dst = sort[HIST + d * BLOCKS + wid.x] + rank;
    let to_first = FIRST || SRC == 1u;
    sort[select(KEYS1, KEYS0, to_first) + dst] = key;
    sort[select(VALS1, VALS0, to_first) + dst] = val;
  }
}

// ---- backward: dwte ----

@group(0) @binding(0) var<storage, read_write> dwte: array<f32>;
@group(0) @binding(1) var<storage, read> wdout: array<f32>;
@group(0) @binding(2) var<storage, read> sorted: array<u32>;  // the sort scratch, read-only

fn sorted_key(j: u32) -> u32 {
  return sorted[select(KEYS0, KEYS1, SRC == 1u) + j];
}

// dwte is (V,C); wdout is dout (B,T,C); sorted buffer SRC holds (B*T) token ids in
// increasing order and their positions b*T+t (increasing within a token).
// dwte[v,c] += sum over positions p with inp[p] = v, in increasing p, of dout[p,c].
// One invocation per (sorted index, c); the first index of each token's run does the sum.
@compute @workgroup_size(WG)
fn encoder_backward_wte(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  let n = B * T;
  if (i >= n * C) {
    return;
  }
  let j0 = i / C;
  let c = i % C;
  let v = sorted_key(j0);
  if (j0 > 0u && sorted_key(j0 - 1u) == v) {
    return;
  }
  let vals = select(VALS0, VALS1, SRC == 1u);
  var s = 0.0;
  for (var j = j0; j < n && sorted_key(j) == v; j++) {
    s += wdout[sorted[vals + j] * C + c];
  }
  dwte[v * C + c] += s;
}
