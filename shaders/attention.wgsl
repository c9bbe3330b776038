// Causal multi-head self-attention, fused (flash) path, the default: the forward runs an
// online softmax over key blocks and saves one logsumexp per query row, never building the
// T*T matrix; the backward recomputes the probabilities block by block (FlashAttention-2),
// one kernel gathering dq per query block and one gathering dk, dv per key block, so every
// gradient element is owned by one invocation (no atomics, fixed summation order). The
// multi-kernel path that materialises the attention matrix is attention_naive.wgsl.
// qkv is (B,T,3C): q, k, v each C = NH*HS wide, head h owning channels h*HS..(h+1)*HS.

override B: u32 = 1;
override T: u32 = 1;
override C: u32 = 1;
override NH: u32 = 1;
override HS: u32 = 1;
override WG: u32 = 64;      // invocations per workgroup (a power of two)
override BR: u32 = 16;      // flash: query rows per tile
override BC: u32 = 16;      // flash: key rows per tile
override ACCUMULATE: bool = true;  // backward: dqkv += (true) or dqkv = (false: a fresh gradient, no zero-fill needed)
// Row strides of the workgroup tiles, one more than a row: a warp's reads of row c,
// element i for 16 or 32 different rows c would otherwise hit the same memory bank
// (HS and BC are multiples of 32 or of 16), serialising them 16 or 32 ways.
override HSP: u32 = HS + 1u;   // q/k/v tiles (tq, tq2, tk, tv)
override BCP: u32 = BC + 1u;   // score tiles (ts, ts2)

const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite under exp and subtraction

// Where flat element e (row e / HS, column e % HS) of a q/k/v tile lives.
fn padded(e: u32) -> u32 {
  return (e / HS) * HSP + e % HS;
}

fn scale() -> f32 {
  return 1.0 / sqrt(f32(HS));
}

// Index of an invocation in a 1-D problem laid over a 2-D grid of workgroups.
fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// ---------------------------------------------------------------------------------
// Fused (flash) path. Tiles live in workgroup memory; each invocation owns the tile
// elements e = tid, tid + WG, ... so accumulators need no synchronisation.

var<workgroup> tq: array<f32, BR * HSP>;   // query rows (q, or dout in the backward)
var<workgroup> tq2: array<f32, BR * HSP>;  // backward: the other query-side tile
var<workgroup> tk: array<f32, BC * HSP>;   // key rows
var<workgroup> tv: array<f32, BC * HSP>;   // value rows
var<workgroup> ts: array<f32, BR * BCP>;   // scores / probabilities
var<workgroup> ts2: array<f32, BR * BCP>;  // backward: score gradients
var<workgroup> acc: array<f32, BR * HS>;   // forward: output accumulator; dq accumulator
var<workgroup> acc2: array<f32, BC * HS>;  // backward: dk accumulator
var<workgroup> acc3: array<f32, BC * HS>;  // backward: dv accumulator
var<workgroup> rm: array<f32, BR>;         // per query row: running max, or logsumexp
var<workgroup> rl: array<f32, BR>;         // per query row: running sum, or delta
var<workgroup> ra: array<f32, BR>;         // per query row: rescale factor of this step

@group(0) @binding(0) var<storage, read_write> ff_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> ff_lse: array<f32>;
@group(0) @binding(2) var<storage, read> ff_qkv: array<f32>;

// out is (B,T,C), lse is (B,NH,T), qkv is (B,T,3C). Grid (ceil(T/BR), B*NH): one
// workgroup per block of BR query rows of one head, looping over the key blocks up to
// the diagonal with an online softmax. Saves lse[b,h,t] = log sum_{t2<=t} exp(score).
@compute @workgroup_size(WG)
fn attention_flash_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let r0 = wid.x * BR;
  for (var e = tid; e < BR * HS; e += WG) {
    let t = r0 + e / HS;
    var x = 0.0;
    if (t < T) { x = ff_qkv[(b * T + t) * 3u * C + h * HS + e % HS]; }
    tq[padded(e)] = x;
    acc[e] = 0.0;
  }
  for (var r = tid; r < BR; r += WG) {
    rm[r] = NEG_BIG;
    rl[r] = 0.0;
  }
  let nkb = (min(r0 + BR, T) - 1u) / BC + 1u;
  for (var kb = 0u; kb < nkb; kb++) {
    let c0 = kb * BC;
    for (var e = tid; e < BC * HS; e += WG) {
      let t = c0 + e / HS;
      var xk = 0.0;
      var xv = 0.0;
      if (t < T) {
        let base = (b * T + t) * 3u * C + h * HS + e % HS;
        xk = ff_qkv[base + C];
        xv = ff_qkv[base + 2u * C];
      }
      tk[padded(e)] = xk;
      tv[padded(e)] = xv;
    }
    workgroupBarrier();
    for (var e = tid; e < BR * BC; e += WG) {
      let r = e / BC;
      let c = e % BC;
      var s = NEG_BIG;
      if (c0 + c <= r0 + r) {
        var d = 0.0;
        for (var i = 0u; i < HS; i++) { d += tq[r * HSP + i] * tk[c * HSP + i]; }
        s = d * scale();
      }
      ts[r * BCP + c] = s;
    }
    workgroupBarrier();
    for (var r = tid; r < BR; r += WG) {
      let row = r0 + r;
      var mx = rm[r];
      for (var c = 0u; c < BC; c++) {
        if (c0 + c <= row) { mx = max(mx, ts[r * BCP + c]); }
      }
      let alpha = exp(rm[r] - mx);
      var sum = 0.0;
      for (var c = 0u; c < BC; c++) {
        var p = 0.0;
        if (c0 + c <= row) { p = exp(ts[r * BCP + c] - mx); }
        ts[r * BCP + c] = p;
        sum += p;
      }
      rl[r] = rl[r] * alpha + sum;
      rm[r] = mx;
      ra[r] = alpha;
    }
    workgroupBarrier();
    for (var e = tid; e < BR * HS; e += WG) {
      let r = e / HS;
      let i = e % HS;
      var o = acc[e] * ra[r];
      for (var c = 0u; c < BC; c++) { o += ts[r * BCP + c] * tv[c * HSP + i]; }
      acc[e] = o;
    }
    workgroupBarrier();
  }
  for (var e = tid; e < BR * HS; e += WG) {
    let r = e / HS;
    let t = r0 + r;
    if (t < T) { ff_out[(b * T + t) * C + h * HS + e % HS] = acc[e] / rl[r]; }
  }
  for (var r = tid; r < BR; r += WG) {
    let t = r0 + r;
    if (t < T) { ff_lse[bh * T + t] = rm[r] + log(rl[r]); }
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
@group(0) @binding(2) var<storage, read> fq_qkv: array<f32>;
@group(0) @binding(3) var<storage, read> fq_lse: array<f32>;
@group(0) @binding(4) var<storage, read> fq_delta: array<f32>;

// dqkv, qkv are (B,T,3C); dout is (B,T,C); lse, delta are (B,NH,T). Grid
// (ceil(T/BR), B*NH): one workgroup per query block; recomputes p = exp(score - lse)
// and ds = p (dout . v - delta) key block by key block, and adds dq = ds k / sqrt(HS)
// (writes it, without ACCUMULATE).
@compute @workgroup_size(WG)
fn attention_flash_backward_dq(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let r0 = wid.x * BR;
  for (var e = tid; e < BR * HS; e += WG) {
    let t = r0 + e / HS;
    var xq = 0.0;
    var xd = 0.0;
    if (t < T) {
      xq = fq_qkv[(b * T + t) * 3u * C + h * HS + e % HS];
      xd = fq_dout[(b * T + t) * C + h * HS + e % HS];
    }
    tq[padded(e)] = xq;
    tq2[padded(e)] = xd;
    acc[e] = 0.0;
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
  let nkb = (min(r0 + BR, T) - 1u) / BC + 1u;
  for (var kb = 0u; kb < nkb; kb++) {
    let c0 = kb * BC;
    for (var e = tid; e < BC * HS; e += WG) {
      let t = c0 + e / HS;
      var xk = 0.0;
      var xv = 0.0;
      if (t < T) {
        let base = (b * T + t) * 3u * C + h * HS + e % HS;
        xk = fq_qkv[base + C];
        xv = fq_qkv[base + 2u * C];
      }
      tk[padded(e)] = xk;
      tv[padded(e)] = xv;
    }
    workgroupBarrier();
    for (var e = tid; e < BR * BC; e += WG) {
      let r = e / BC;
      let c = e % BC;
      var ds = 0.0;
      if (c0 + c <= r0 + r && r0 + r < T) {
        var s = 0.0;
        var dp = 0.0;
        for (var i = 0u; i < HS; i++) {
          s += tq[r * HSP + i] * tk[c * HSP + i];
          dp += tq2[r * HSP + i] * tv[c * HSP + i];
        }
        let p = exp(s * scale() - rm[r]);
        ds = p * (dp - rl[r]);
      }
      ts[r * BCP + c] = ds;
    }
    workgroupBarrier();
    for (var e = tid; e < BR * HS; e += WG) {
      let r = e / HS;
      let i = e % HS;
      var a = acc[e];
      for (var c = 0u; c < BC; c++) { a += ts[r * BCP + c] * tk[c * HSP + i]; }
      acc[e] = a;
    }
    workgroupBarrier();
  }
  for (var e = tid; e < BR * HS; e += WG) {
    let t = r0 + e / HS;
    if (t < T) {
      let o = (b * T + t) * 3u * C + h * HS + e % HS;
      var dq = acc[e] * scale();
      if (ACCUMULATE) {
        dq += fq_dqkv[o];
      }
      fq_dqkv[o] = dq;
    }
  }
}

// dqkv, qkv are (B,T,3C); dout is (B,T,C); lse, delta are (B,NH,T). Grid
// (ceil(T/BC), B*NH): one workgroup per key block; loops over the query blocks from
// the diagonal to the end and adds dk = sum_t1 ds q_t1 / sqrt(HS), dv = sum_t1 p dout_t1
// (writes them, without ACCUMULATE). Uses the same bindings as the dq kernel.
@compute @workgroup_size(WG)
fn attention_flash_backward_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let c0 = wid.x * BC;
  for (var e = tid; e < BC * HS; e += WG) {
    let t = c0 + e / HS;
    var xk = 0.0;
    var xv = 0.0;
    if (t < T) {
      let base = (b * T + t) * 3u * C + h * HS + e % HS;
      xk = fq_qkv[base + C];
      xv = fq_qkv[base + 2u * C];
    }
    tk[padded(e)] = xk;
    tv[padded(e)] = xv;
    acc2[e] = 0.0;
    acc3[e] = 0.0;
  }
  let nqb = (T + BR - 1u) / BR;
  for (var qb = c0 / BR; qb < nqb; qb++) {
    let r0 = qb * BR;
    for (var e = tid; e < BR * HS; e += WG) {
      let t = r0 + e / HS;
      var xq = 0.0;
      var xd = 0.0;
      if (t < T) {
        xq = fq_qkv[(b * T + t) * 3u * C + h * HS + e % HS];
        xd = fq_dout[(b * T + t) * C + h * HS + e % HS];
      }
      tq[padded(e)] = xq;
      tq2[padded(e)] = xd;
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
    workgroupBarrier();
    for (var e = tid; e < BR * BC; e += WG) {
      let r = e / BC;
      let c = e % BC;
      var p = 0.0;
      var ds = 0.0;
      if (c0 + c <= r0 + r && r0 + r < T) {
        var s = 0.0;
        var dp = 0.0;
        for (var i = 0u; i < HS; i++) {
          s += tq[r * HSP + i] * tk[c * HSP + i];
          dp += tq2[r * HSP + i] * tv[c * HSP + i];
        }
        p = exp(s * scale() - rm[r]);
        ds = p * (dp - rl[r]);
      }
      ts[r * BCP + c] = p;
      ts2[r * BCP + c] = ds;
    }
    workgroupBarrier();
    for (var e = tid; e < BC * HS; e += WG) {
      let c = e / HS;
      let i = e % HS;
      var dk = acc2[e];
      var dv = acc3[e];
      for (var r = 0u; r < BR; r++) {
        dk += ts2[r * BCP + c] * tq[r * HSP + i];
        dv += ts[r * BCP + c] * tq2[r * HSP + i];
      }
      acc2[e] = dk;
      acc3[e] = dv;
    }
    workgroupBarrier();
  }
  for (var e = tid; e < BC * HS; e += WG) {
    let t = c0 + e / HS;
    if (t < T) {
      let o = (b * T + t) * 3u * C + h * HS + e % HS;
      var dk = acc2[e] * scale();
      var dv = acc3[e];
      if (ACCUMULATE) {
        dk += fq_dqkv[o + C];
        dv += fq_dqkv[o + 2u * C];
      }
      fq_dqkv[o + C] = dk;
      fq_dqkv[o + 2u * C] = dv;
    }
  }
}
