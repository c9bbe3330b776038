// Causal multi-head self-attention, the multi-kernel path (llm.c's attention_forward /
// attention_backward): it mirrors src/reference/attention.ts, materialises the (B,NH,T,T)
// attention matrix and saves it for the backward pass. The default is the fused (flash)
// path in attention.wgsl; this one is the oracle that path is checked against on the GPU.
// qkv is (B,T,3C): q, k, v each C = NH*HS wide, head h owning channels h*HS..(h+1)*HS.

override B: u32 = 1;
override T: u32 = 1;
override C: u32 = 1;
override NH: u32 = 1;
override HS: u32 = 1;
override WG: u32 = 64;      // invocations per workgroup (a power of two)
override ACCUMULATE: bool = true;  // backward: dqkv += (true) or dqkv = (false: a fresh gradient, no zero-fill needed)

const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite under exp and subtraction

fn scale() -> f32 {
  return 1.0 / sqrt(f32(HS));
}

// Index of an invocation in a 1-D problem laid over a 2-D grid of workgroups.
fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

var<workgroup> red: array<f32, WG>;

// Tree reductions over the workgroup, the same order every run.
fn wg_sum(x: f32, tid: u32) -> f32 {
  red[tid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] += red[tid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn wg_max(x: f32, tid: u32) -> f32 {
  red[tid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] = max(red[tid], red[tid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

// ---------------------------------------------------------------------------------
// Multi-kernel path.

@group(0) @binding(0) var<storage, read_write> sf_att: array<f32>;
@group(0) @binding(1) var<storage, read> sf_qkv: array<f32>;

// att is (B,NH,T,T), qkv is (B,T,3C). Grid (T, B*NH): one workgroup per query row
// (b,h,t). att[b,h,t,t2] = softmax over t2 <= t of q_t . k_t2 / sqrt(HS); 0 for t2 > t.
@compute @workgroup_size(WG)
fn attention_softmax_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x;
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let row = (bh * T + t) * T;
  let q = (b * T + t) * 3u * C + h * HS;
  var mx = NEG_BIG;
  for (var t2 = tid; t2 <= t; t2 += WG) {
    let k = (b * T + t2) * 3u * C + C + h * HS;
    var s = 0.0;
    for (var i = 0u; i < HS; i++) { s += sf_qkv[q + i] * sf_qkv[k + i]; }
    s *= scale();
    sf_att[row + t2] = s;
    mx = max(mx, s);
  }
  mx = wg_max(mx, tid);
  var sum = 0.0;
  for (var t2 = tid; t2 <= t; t2 += WG) {
    let e = exp(sf_att[row + t2] - mx);
    sf_att[row + t2] = e;
    sum += e;
  }
  let inv = 1.0 / wg_sum(sum, tid);
  for (var t2 = tid; t2 < T; t2 += WG) {
    sf_att[row + t2] = select(0.0, sf_att[row + t2] * inv, t2 <= t);
  }
}

@group(0) @binding(0) var<storage, read_write> vf_out: array<f32>;
@group(0) @binding(1) var<storage, read> vf_att: array<f32>;
@group(0) @binding(2) var<storage, read> vf_qkv: array<f32>;

// out is (B,T,C), att is (B,NH,T,T), qkv is (B,T,3C). One invocation per element of
// out: out[b,t,h*HS+i] = sum_{t2 <= t} att[b,h,t,t2] v[b,t2,h*HS+i].
@compute @workgroup_size(WG)
fn attention_value_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                           @builtin(local_invocation_index) lid: u32) {
  let idx = flat_index(wid, nwg, lid);
  if (idx >= B * T * C) { return; }
  let c = idx % C;
  let t = (idx / C) % T;
  let b = idx / (C * T);
  let h = c / HS;
  let row = ((b * NH + h) * T + t) * T;
  var s = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    s += vf_att[row + t2] * vf_qkv[(b * T + t2) * 3u * C + 2u * C + c];
  }
  vf_out[idx] = s;
}

@group(0) @binding(0) var<storage, read_write> sb_ds: array<f32>;
@group(0) @binding(1) var<storage, read> sb_att: array<f32>;
@group(0) @binding(2) var<storage, read> sb_dout: array<f32>;
@group(0) @binding(3) var<storage, read> sb_qkv: array<f32>;

// ds, att are (B,NH,T,T); dout is (B,T,C); qkv is (B,T,3C). Grid (T, B*NH): one
// workgroup per query row. datt_t2 = dout_t . v_t2, then through the softmax:
// ds[b,h,t,t2] = att (datt - sum_j att_j datt_j) / sqrt(HS), the gradient of the
// unscaled score q_t . k_t2 (written for t2 <= t only; the rest is never read).
@compute @workgroup_size(WG)
fn attention_softmax_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x;
  let bh = wid.y;
  let b = bh / NH;
  let h = bh % NH;
  let row = (bh * T + t) * T;
  let o = (b * T + t) * C + h * HS;
  var dot = 0.0;
  for (var t2 = tid; t2 <= t; t2 += WG) {
    let v = (b * T + t2) * 3u * C + 2u * C + h * HS;
    var s = 0.0;
    for (var i = 0u; i < HS; i++) { s += sb_dout[o + i] * sb_qkv[v + i]; }
    sb_ds[row + t2] = s;
    dot += sb_att[row + t2] * s;
  }
  dot = wg_sum(dot, tid);
  for (var t2 = tid; t2 <= t; t2 += WG) {
    sb_ds[row + t2] = sb_att[row + t2] * (sb_ds[row + t2] - dot) * scale();
  }
}

@group(0) @binding(0) var<storage, read_write> qb_dqkv: array<f32>;
@group(0) @binding(1) var<storage, read> qb_ds: array<f32>;
@group(0) @binding(2) var<storage, read> qb_att: array<f32>;
@group(0) @binding(3) var<storage, read> qb_dout: array<f32>;
@group(0) @binding(4) var<storage, read> qb_qkv: array<f32>;

// dqkv, qkv are (B,T,3C); ds, att are (B,NH,T,T); dout is (B,T,C). One invocation per
// (b,t,c), c < C, accumulating (+=; = without ACCUMULATE) the three gradients of token t, channel c:
// dq_t = sum_{t2<=t} ds[t,t2] k_t2;  dk_t = sum_{t1>=t} ds[t1,t] q_t1;  dv_t = sum_{t1>=t} att[t1,t] dout_t1.
@compute @workgroup_size(WG)
fn attention_qkv_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                          @builtin(local_invocation_index) lid: u32) {
  let idx = flat_index(wid, nwg, lid);
  if (idx >= B * T * C) { return; }
  let c = idx % C;
  let t = (idx / C) % T;
  let b = idx / (C * T);
  let h = c / HS;
  let mat = (b * NH + h) * T * T;
  var dq = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    dq += qb_ds[mat + t * T + t2] * qb_qkv[(b * T + t2) * 3u * C + C + c];
  }
  var dk = 0.0;
  var dv = 0.0;
  for (var t1 = t; t1 < T; t1++) {
    dk += qb_ds[mat + t1 * T + t] * qb_qkv[(b * T + t1) * 3u * C + c];
    dv += qb_att[mat + t1 * T + t] * qb_dout[(b * T + t1) * C + c];
  }
  let o = (b * T + t) * 3u * C + c;
  if (ACCUMULATE) {
    dq += qb_dqkv[o];
    dk += qb_dqkv[o + C];
    dv += qb_dqkv[o + 2u * C];
  }
  qb_dqkv[o] = dq;
  qb_dqkv[o + C] = dk;
  qb_dqkv[o + 2u * C] = dv;
}
