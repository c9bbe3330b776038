// The tied LM head's softmax + cross-entropy, fused as in llm.c's fused classifier:
// the logits of a chunk of rows (from matmul) are reduced to a loss per row and
// overwritten in place with their gradient, so the (N,V) probabilities never exist.
// Also the row logits for sampling and the deterministic mean of the losses.

override R: u32 = 1;         // rows in this chunk (or losses to average)
override C: u32 = 1;
override V: u32 = 1;
override WG: u32 = 256;      // invocations per workgroup (a power of two)
override GRAD: bool = true;  // classifier_softmax: overwrite logits with dlogits
override SCALE: f32 = 1.0;   // d(total loss)/d(losses[r]); meanLoss: the factor on the sum
override ACCUMULATE: bool = false;

const NEG_BIG: f32 = -3.0e38;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> target_logit: f32;

// The invocation's place in the workgroup (and, with subgroups, in its subgroup).
// Reductions across the workgroup are in a fixed order either way: with subgroups, within
// each subgroup and then over the subgroups in subgroup_id order; without, a tree in
// workgroup memory. The orders differ, so the two variants differ in the last bits.
// #if subgroups
struct Lane {
  @builtin(local_invocation_index) tid: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_id) sg_id: u32,
  @builtin(num_subgroups) num_sg: u32,
}
// #else
struct Lane {
  @builtin(local_invocation_index) tid: u32,
}
// #endif

@group(0) @binding(0) var<storage, read_write> sm_logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> sm_losses: array<f32>;
@group(0) @binding(2) var<storage, read> sm_targets: array<u32>;

// logits is (R,V), losses is (R), targets is (R) token ids in [0,V). One workgroup per
// row (a 2-D grid when R is large). losses[r] = logsumexp(logits[r]) - logits[r,target];
// with GRAD, logits[r] is overwritten with (softmax(logits[r]) - onehot(target)) * SCALE.
// Max and sum are reduced together (online softmax), each invocation over its own
// strided columns and then across the workgroup in a fixed order (Lane above), so the
// row is read twice and written once.
@compute @workgroup_size(WG)
fn classifier_softmax(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, lane: Lane) {
  let tid = lane.tid;
  let r = wid.y * nwg.x + wid.x;
  if (r >= R) { return; }
  let base = r * V;
  let tgt = sm_targets[r];
  var m = NEG_BIG;
  var s = 0.0;
  for (var v = tid; v < V; v += WG) {
    let l = sm_logits[base + v];
    if (l > m) {
      s *= exp(m - l);
      m = l;
    }
    s += exp(l - m);
    if (v == tgt) { target_logit = l; }
  }
// #if subgroups
  // Each subgroup's max and its sum rescaled to it; then the row's over the subgroups.
  let sm = subgroupMax(m);
  let ss = subgroupAdd(s * exp(m - sm));
  if (lane.sg_lane == 0u) {
    red_m[lane.sg_id] = sm;
    red_s[lane.sg_id] = ss;
  }
  workgroupBarrier();
  var mx = NEG_BIG;
  for (var i = 0u; i < lane.num_sg; i++) { mx = max(mx, red_m[i]); }
  var sum = 0.0;
  for (var i = 0u; i < lane.num_sg; i++) { sum += red_s[i] * exp(red_m[i] - mx); }
// #else
  red_m[tid] = m;
  red_s[tid] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (tid < st) {
      let m2 = red_m[tid + st];
      let mm = max(m, m2);
      s = s * exp(m - mm) + red_s[tid + st] * exp(m2 - mm);
      m = mm;
      red_m[tid] = m;
      red_s[tid] = s;
    }
    workgroupBarrier();
  }
  let mx = red_m[0];
  let sum = red_s[0];
// #endif
  if (tid == 0u) { sm_losses[r] = log(sum) - (target_logit - mx); }
  if (GRAD) {
    let inv = 1.0 / sum;
    for (var v = tid; v < V; v += WG) {
      let p = exp(sm_logits[base + v] - mx) * inv;
      sm_logits[base + v] = (p - select(0.0, 1.0, v == tgt)) * SCALE;
    }
  }
}

@group(0) @binding(0) var<storage, read_write> rl_out: array<f32>;
@group(0) @binding(1) var<storage, read> rl_x: array<f32>;
@group(0) @binding(2) var<storage, read> rl_wte: array<f32>;
@group(0) @binding(3) var<storage, read> rl_row: array<u32>;

// out is (V); x is (rows,C); wte is (V,C); row is (1): the row of x to use.
// out[v] = x[row] . wte[v], one invocation per v (for sampling: the last position's logits).
@compute @workgroup_size(WG)
fn classifier_row_logits(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_index) lid: u32) {
  let v = (wid.y * nwg.x + wid.x) * WG + lid;
  if (v >= V) { return; }
  let xo = rl_row[0] * C;
  let wo = v * C;
  var s = 0.0;
  for (var c = 0u; c < C; c++) { s += rl_x[xo + c] * rl_wte[wo + c]; }
  rl_out[v] = s;
}

@group(0) @binding(0) var<storage, read_write> ml_out: array<f32>;
@group(0) @binding(1) var<storage, read> ml_losses: array<f32>;

// out is (1), losses is (R). One workgroup: out[0] = (ACCUMULATE ? out[0] : 0) + SCALE *
// sum(losses), each invocation summing its strided losses in order, then across the
// workgroup in a fixed order (as classifier_softmax).
@compute @workgroup_size(WG)
fn mean_loss(lane: Lane) {
  let tid = lane.tid;
  var s = 0.0;
  for (var i = tid; i < R; i += WG) { s += ml_losses[i]; }
// #if subgroups
  let ss = subgroupAdd(s);
  if (lane.sg_lane == 0u) { red_s[lane.sg_id] = ss; }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < lane.num_sg; i++) { total += red_s[i]; }
// #else
  red_s[tid] = s;
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (tid < st) { red_s[tid] += red_s[tid + st]; }
    workgroupBarrier();
  }
  let total = red_s[0];
// #endif
  if (tid == 0u) {
    var prev = 0.0;
    if (ACCUMULATE) { prev = ml_out[0]; }
    ml_out[0] = prev + total * SCALE;
  }
}
