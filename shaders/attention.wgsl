// Causal multi-head self-attention, fused (flash) path, the default: the forward runs an
// online softmax over key blocks and saves one logsumexp per query row, never building the
// T*T matrix; the backward recomputes the probabilities block by block (FlashAttention-2),
// one kernel gathering dq per query block and one gathering dk, dv per key block, so every
// gradient element is owned by one invocation (no atomics, fixed summation order). The
// multi-kernel path that materialises the attention matrix is attention_naive.wgsl.
// qkv is (B,T,3C): q, k, v each C = NH*HS wide, head h owning channels h*HS..(h+1)*HS.
//
// Where the work goes (a GPU is bound by how many workgroup-memory loads feed each FMA):
// - forward: one invocation per query row, its q and output rows in registers; the key
//   and value rows of a tile are read by every invocation at the same address (one
//   broadcast load feeds 4 FMAs), and the online softmax needs no other invocation.
// - backward: each invocation computes a 2x2 block of a score tile (8 vec4 loads for 32
//   FMAs) and keeps its share of dq, or of dk and dv, in registers across all tiles.
// Head rows are handled as vec4s, zero-padded from HS to 4 * HS4 (zeros add nothing).
//
// Switch `dropout` (nanoGPT's attn_dropout): the values are weighted by the dropped
// probabilities p * drop_factor(key, ((b*NH+h)*T+t)*T+t2) (dropout_mask.wgsl); the
// softmax's sum stays that of the undropped p. The backward recomputes the mask: dv
// takes the dropped p, and ds = p (drop_factor dout.v - delta), where delta = dout . out
// still holds because out is the dropped output. The key is one u32 binding.
// #switch dropout
// #include dropout_mask

override B: u32 = 1;
override T: u32 = 1;
override C: u32 = 1;
override NH: u32 = 1;
override HS: u32 = 1;
override WG: u32 = 64;      // invocations per workgroup; the forward's query rows per workgroup
override BR: u32 = 16;      // backward: query rows per tile (even)
override BC: u32 = 16;      // key rows per tile (even in the backward)
override NACC: u32 = 1;     // backward: vec4 accumulators per invocation, ceil(tile rows * HS4 / WG) <= MAX_ACC
override ACCUMULATE: bool = true;  // backward: dqkv += (true) or dqkv = (false: a fresh gradient, no zero-fill needed)
override HS4: u32 = (HS + 3u) / 4u;  // vec4s per head row
// Row stride of the q/k/v tiles in vec4s, one more than a row: in the backward a warp
// reads the same column of 8 or 16 different rows, which with HS4 a multiple of 8 would
// land in the same memory banks. Score tiles likewise have rows BC + 1 long.
override HSP: u32 = HS4 + 1u;
override BCP: u32 = BC + 1u;

const MAX_HS4: u32 = 64u;   // forward: q and output rows in registers, so HS <= 256
const MAX_ACC: u32 = 16u;   // backward: the most vec4 accumulators per invocation

const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite under exp and subtraction

fn scale() -> f32 {
  return 1.0 / sqrt(f32(HS));
}

// Index of an invocation in a 1-D problem laid over a 2-D grid of workgroups.
fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// ---------------------------------------------------------------------------------
// Fused (flash) path.

@group(0) @binding(2) var<storage, read> qkv: array<f32>;  // every flash kernel but delta

var<workgroup> tk: array<vec4f, BC * HSP>;   // key rows
var<workgroup> tv: array<vec4f, BC * HSP>;   // value rows
var<workgroup> tq: array<vec4f, BR * HSP>;   // backward: query rows times scale()
var<workgroup> tq2: array<vec4f, BR * HSP>;  // backward: dout rows
var<workgroup> ts: array<f32, BR * BCP>;     // backward: probabilities
var<workgroup> ts2: array<f32, BR * BCP>;    // backward: score gradients
var<workgroup> rm: array<f32, BR>;           // backward, per query row: logsumexp
var<workgroup> rl: array<f32, BR>;           // backward, per query row: delta

// Channels 4j..4j+3 of head h's q (part 0), k (1) or v (2) at (b, t): zero past HS and
// for t >= T.
fn qkv4(part: u32, b: u32, t: u32, h: u32, j: u32) -> vec4f {
  var x = vec4f(0.0);
  if (t < T) {
    let base = (b * T + t) * 3u * C + part * C + h * HS + 4u * j;
    for (var c = 0u; c < 4u; c++) {
      if (4u * j + c < HS) { x[c] = qkv[base + c]; }
    }
  }
  return x;
}

// Key and value rows c0..c0+BC-1 of head (b, h) into tk, tv.
fn load_kv(b: u32, h: u32, c0: u32, tid: u32) {
  for (var e = tid; e < BC * HS4; e += WG) {
    let c = e / HS4;
    let j = e % HS4;
    tk[c * HSP + j] = qkv4(1u, b, c0 + c, h, j);
    tv[c * HSP + j] = qkv4(2u, b, c0 + c, h, j);
  }
}

@group(0) @binding(0) var<storage, read_write> ff_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> ff_lse: array<f32>;
// #if dropout
@group(0) @binding(3) var<storage, read> ff_key: array<u32>;
// #endif

// The forward's weight on value row t2 of query row t of head bh: 1, or dropout's factor.
fn forward_drop(bh: u32, t: u32, t2: u32) -> f32 {
// #if dropout
  return drop_factor(ff_key[0], (bh * T + t) * T + t2);
// #else
  return 1.0;
// #endif
}

var<private> qrow: array<vec4f, MAX_HS4>;
var<private> orow: array<vec4f, MAX_HS4>;

// out is (B,T,C), lse is (B,NH,T), qkv is (B,T,3C). Grid (ceil(T/WG), B*NH): one
// workgroup per WG query rows of one head, one invocation per row, looping over the key
// tiles up to the block's last row with an online softmax: the output row is rescaled
// only when a key raises the row's maximum. Saves lse[b,h,t] = log sum_{t2<=t} exp(score).
@compute @workgroup_size(WG)
fn attention_flash_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let r0 = wid.x * WG;
  let t = r0 + tid;
  for (var j = 0u; j < HS4; j++) {
    qrow[j] = qkv4(0u, b, t, h, j) * scale();
    orow[j] = vec4f(0.0);
  }
  var m = NEG_BIG;
  var l = 0.0;
  let nkb = (min(r0 + WG, T) - 1u) / BC + 1u;
  for (var kb = 0u; kb < nkb; kb++) {
    let c0 = kb * BC;
    workgroupBarrier();  // every invocation is done with the previous tile
    load_kv(b, h, c0, tid);
    workgroupBarrier();
    var n = 0u;  // keys of this tile that row t sees
    if (t < T && c0 <= t) { n = min(BC, t + 1u - c0); }
    for (var c = 0u; c < n; c++) {
      var s = 0.0;
      for (var j = 0u; j < HS4; j++) { s += dot(qrow[j], tk[c * HSP + j]); }
      if (s > m) {
        let alpha = exp(m - s);
        l *= alpha;
        for (var j = 0u; j < HS4; j++) { orow[j] *= alpha; }
        m = s;
      }
      let p = exp(s - m);
      l += p;
      let pv = p * forward_drop(bh, t, c0 + c);
      for (var j = 0u; j < HS4; j++) { orow[j] = fma(vec4f(pv), tv[c * HSP + j], orow[j]); }
    }
  }
  if (t < T) {
    let o = (b * T + t) * C + h * HS;
    for (var j = 0u; j < HS4; j++) {
      let x = orow[j] / l;
      for (var c = 0u; c < 4u; c++) {
        if (4u * j + c < HS) { ff_out[o + 4u * j + c] = x[c]; }
      }
    }
    ff_lse[bh * T + t] = m + log(l);
  }
}

@group(0) @binding(0) var<storage, read_write> fd_delta: array<f32>;
@group(0) @binding(1) var<storage, read> fd_out: array<f32>;
@group(0) @binding(2) var<storage, read> fd_dout: array<f32>;

// delta is (B,NH,T); out, dout are (B,T,C). One invocation per (b,h,t):
// delta[b,h,t] = dout_t . out_t over the head's channels, which equals
// sum_t2 att[t,t2] datt[t,t2], the softmax backward's row term.
@compute @workgroup_size(WG)
fn attention_flash_delta(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_index) lid: u32) {
  let idx = flat_index(wid, nwg, lid);
  if (idx >= B * NH * T) { return; }
  let t = idx % T;
  let bh = idx / T;
  let b = bh / NH;
  let h = bh % NH;
  let o = (b * T + t) * C + h * HS;
  var s = 0.0;
  for (var i = 0u; i < HS; i++) { s += fd_dout[o + i] * fd_out[o + i]; }
  fd_delta[idx] = s;
}

@group(0) @binding(0) var<storage, read_write> fq_dqkv: array<f32>;
@group(0) @binding(1) var<storage, read> fq_dout: array<f32>;
@group(0) @binding(3) var<storage, read> fq_lse: array<f32>;
@group(0) @binding(4) var<storage, read> fq_delta: array<f32>;
// #if dropout
@group(0) @binding(5) var<storage, read> fq_key: array<u32>;
// #endif

// The backward's dropout factor of score (t, t2) of head bh: 1, or the forward's.
fn backward_drop(bh: u32, t: u32, t2: u32) -> f32 {
// #if dropout
  return drop_factor(fq_key[0], (bh * T + t) * T + t2);
// #else
  return 1.0;
// #endif
}

var<private> acc: array<vec4f, MAX_ACC>;   // dq, or dk
var<private> acc2: array<vec4f, MAX_ACC>;  // dv

// Query rows r0..r0+BR-1 of head (b, h): q * scale() into tq, dout into tq2, logsumexp
// into rm, delta into rl (zeros past T).
fn load_q(b: u32, h: u32, bh: u32, r0: u32, tid: u32) {
  for (var e = tid; e < BR * HS4; e += WG) {
    let r = e / HS4;
    let j = e % HS4;
    let t = r0 + r;
    tq[r * HSP + j] = qkv4(0u, b, t, h, j) * scale();
    var d = vec4f(0.0);
    if (t < T) {
      let o = (b * T + t) * C + h * HS + 4u * j;
      for (var c = 0u; c < 4u; c++) {
        if (4u * j + c < HS) { d[c] = fq_dout[o + c]; }
      }
    }
    tq2[r * HSP + j] = d;
  }
  for (var r = tid; r < BR; r += WG) {
    let t = r0 + r;
    var l = 0.0;
    var dl = 0.0;
    if (t < T) {
      l = fq_lse[bh * T + t];
      dl = fq_delta[bh * T + t];
    }
    rm[r] = l;
    rl[r] = dl;
  }
}

// dqkv[o..o+3] = x (+= with ACCUMULATE), the channels 4j.. that are inside the head.
fn put_grad4(o: u32, j: u32, x: vec4f) {
  for (var c = 0u; c < 4u; c++) {
    if (4u * j + c < HS) {
      var g = x[c];
      if (ACCUMULATE) { g += fq_dqkv[o + c]; }
      fq_dqkv[o + c] = g;
    }
  }
}

// p = exp(score - lse) and ds = p (dout . v - delta) of query rows r0.. (tq, tq2, rm, rl)
// against key rows c0.. (tk, tv) of head bh into ts, ts2; zero where the key is after the
// query. With dropout, ts holds the dropped p (what dv needs) and ds = p (z dout.v - delta).
// Each invocation computes 2x2 blocks: rows r, r + BR/2 and columns c, c + BC/2.
fn scores(bh: u32, r0: u32, c0: u32, tid: u32) {
  let hr = BR / 2u;
  let hc = BC / 2u;
  for (var e = tid; e < hr * hc; e += WG) {
    let r = e / hc;
    let c = e % hc;
    var s = vec4f(0.0);   // (r, c), (r, c + hc), (r + hr, c), (r + hr, c + hc)
    var dp = vec4f(0.0);
    for (var j = 0u; j < HS4; j++) {
      let q0 = tq[r * HSP + j];
      let q1 = tq[(r + hr) * HSP + j];
      let k0 = tk[c * HSP + j];
      let k1 = tk[(c + hc) * HSP + j];
      s += vec4f(dot(q0, k0), dot(q0, k1), dot(q1, k0), dot(q1, k1));
      let d0 = tq2[r * HSP + j];
      let d1 = tq2[(r + hr) * HSP + j];
      let v0 = tv[c * HSP + j];
      let v1 = tv[(c + hc) * HSP + j];
      dp += vec4f(dot(d0, v0), dot(d0, v1), dot(d1, v0), dot(d1, v1));
    }
    for (var q = 0u; q < 4u; q++) {
      let rr = r + (q / 2u) * hr;
      let cc = c + (q % 2u) * hc;
      var p = 0.0;
      var ds = 0.0;
      if (c0 + cc <= r0 + rr && r0 + rr < T) {
        let z = backward_drop(bh, r0 + rr, c0 + cc);
        let pr = exp(s[q] - rm[rr]);
        p = pr * z;
        ds = pr * (z * dp[q] - rl[rr]);
      }
      ts[rr * BCP + cc] = p;
      ts2[rr * BCP + cc] = ds;
    }
  }
}

// dqkv, qkv are (B,T,3C); dout is (B,T,C); lse, delta are (B,NH,T). Grid
// (ceil(T/BR), B*NH): one workgroup per query block; recomputes p and ds key block by
// key block and adds dq = ds k / sqrt(HS) (writes it, without ACCUMULATE). Invocation
// tid owns vec4 slots tid, tid + WG, ... of the block's dq (row e / HS4, channels 4(e % HS4)..).
@compute @workgroup_size(WG)
fn attention_flash_backward_dq(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let r0 = wid.x * BR;
  for (var a = 0u; a < NACC; a++) { acc[a] = vec4f(0.0); }
  load_q(b, h, bh, r0, tid);
  let nkb = (min(r0 + BR, T) - 1u) / BC + 1u;
  for (var kb = 0u; kb < nkb; kb++) {
    let c0 = kb * BC;
    workgroupBarrier();  // every invocation is done with the previous tiles
    load_kv(b, h, c0, tid);
    workgroupBarrier();
    scores(bh, r0, c0, tid);
    workgroupBarrier();
    for (var a = 0u; a < NACC; a++) {
      let e = tid + a * WG;
      if (e < BR * HS4) {
        let r = e / HS4;
        let j = e % HS4;
        var x = acc[a];
        for (var c = 0u; c < BC; c++) { x = fma(vec4f(ts2[r * BCP + c]), tk[c * HSP + j], x); }
        acc[a] = x;
      }
    }
  }
  for (var a = 0u; a < NACC; a++) {
    let e = tid + a * WG;
    let t = r0 + e / HS4;
    if (e < BR * HS4 && t < T) {
      let j = e % HS4;
      put_grad4((b * T + t) * 3u * C + h * HS + 4u * j, j, acc[a] * scale());
    }
  }
}

// dqkv, qkv are (B,T,3C); dout is (B,T,C); lse, delta are (B,NH,T). Grid
// (ceil(T/BC), B*NH): one workgroup per key block; loops over the query blocks from
// the diagonal to the end and adds dk = sum_t1 ds q_t1 / sqrt(HS), dv = sum_t1 p dout_t1
// (writes them, without ACCUMULATE). Uses the same bindings as the dq kernel.
// Invocation tid owns vec4 slots tid, tid + WG, ... of the block's dk and dv.
@compute @workgroup_size(WG)
fn attention_flash_backward_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let c0 = wid.x * BC;
  for (var a = 0u; a < NACC; a++) {
    acc[a] = vec4f(0.0);
    acc2[a] = vec4f(0.0);
  }
  load_kv(b, h, c0, tid);
  let nqb = (T + BR - 1u) / BR;
  for (var qb = c0 / BR; qb < nqb; qb++) {
    let r0 = qb * BR;
    workgroupBarrier();  // every invocation is done with the previous tiles
    load_q(b, h, bh, r0, tid);
    workgroupBarrier();
    scores(bh, r0, c0, tid);
    workgroupBarrier();
    for (var a = 0u; a < NACC; a++) {
      let e = tid + a * WG;
      if (e < BC * HS4) {
        let c = e / HS4;
        let j = e % HS4;
        var dk = acc[a];
        var dv = acc2[a];
        for (var r = 0u; r < BR; r++) {
          dk = fma(vec4f(ts2[r * BCP + c]), tq[r * HSP + j], dk);
          dv = fma(vec4f(ts[r * BCP + c]), tq2[r * HSP + j], dv);
        }
        acc[a] = dk;
        acc2[a] = dv;
      }
    }
  }
  for (var a = 0u; a < NACC; a++) {
    let e = tid + a * WG;
    let t = c0 + e / HS4;
    if (e < BC * HS4 && t < T) {
      let j = e % HS4;
      let o = (b * T + t) * 3u * C + h * HS + 4u * j;
      put_grad4(o + C, j, acc[a]);
      put_grad4(o + 2u * C, j, acc2[a]);
    }
  }
}
