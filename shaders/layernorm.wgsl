// LayerNorm over the last dimension (llm.c's layernorm_forward / layernorm_backward),
// PyTorch semantics: biased variance, eps 1e-5 inside the square root. The residual add
// that precedes every LayerNorm but the first is fused into it (layernorm_residual_forward).
// Row kernels run one workgroup per row and reduce across it in a fixed order: with
// subgroups, subgroupAdd within each subgroup and the subgroup sums added in subgroup_id
// order; without, a tree in workgroup memory (the two orders differ, so the two variants
// differ in the last bits). dweight and dbias (sums over all N rows) go through per-chunk
// partial sums in scratch and a fixed-order reduce: every result is bit-identical run to
// run on one device.

override N: u32 = 1;
override C: u32 = 1;
override WG: u32 = 64;         // invocations per row (a power of two)
override PER: u32 = 1;         // forward: row elements per invocation, ceil(C / WG) <= MAX_PER
override ROW_CHUNK: u32 = 64;  // backward: rows per dweight/dbias partial sum
override CHUNKS: u32 = 1;      // backward: ceil(N / ROW_CHUNK)
override ACCUMULATE: bool = true;  // backward dinp: += (true) or = (false: a fresh gradient, no zero-fill needed)

const EPS: f32 = 1e-5;
const MAX_PER: u32 = 32u;      // forward: the row is held in registers, so C <= 32 WG

var<workgroup> red: array<f32, WG>;

// The invocation's place in the workgroup (and, with subgroups, in its subgroup).
// #if subgroups
struct Lane {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_id) sg_id: u32,
  @builtin(num_subgroups) num_sg: u32,
}

// Sum of v over the workgroup, the same order every time (for one subgroup size): each
// subgroup's sum, then those in subgroup_id order. Call from uniform control flow.
fn workgroup_sum(lane: Lane, v: f32) -> f32 {
  let s = subgroupAdd(v);
  if (lane.sg_lane == 0u) {
    red[lane.sg_id] = s;
  }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < lane.num_sg; i++) {
    total += red[i];
  }
  workgroupBarrier();
  return total;
}
// #else
struct Lane {
  @builtin(local_invocation_index) lid: u32,
}

// Sum of v over the workgroup, the same order every time. Call from uniform control flow.
fn workgroup_sum(lane: Lane, v: f32) -> f32 {
  let lid = lane.lid;
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
// #endif

fn row_index(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.y * nwg.x + wid.x;
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> res: array<f32>;
@group(0) @binding(7) var<storage, read> inp2: array<f32>;

// This invocation's elements of the row, xs[j] = element lid + j * WG (0 past C).
var<private> xs: array<f32, MAX_PER>;

// Normalises the row held in xs: out = (x - mean) * rstd * weight + bias, saving mean
// and rstd = 1/sqrt(var + eps). Sums run over j in order, so over i = lid, lid + WG, ...
fn normalise_row(lane: Lane, row: u32) {
  let lid = lane.lid;
  let x = row * C;
  var s = 0.0;
  for (var j = 0u; j < PER; j++) {
    if (lid + j * WG < C) { s += xs[j]; }
  }
  let m = workgroup_sum(lane, s) / f32(C);
  var v = 0.0;
  for (var j = 0u; j < PER; j++) {
    if (lid + j * WG < C) {
      let d = xs[j] - m;
      v += d * d;
    }
  }
  let r = 1.0 / sqrt(workgroup_sum(lane, v) / f32(C) + EPS);
  for (var j = 0u; j < PER; j++) {
    let i = lid + j * WG;
    if (i < C) { out[x + i] = (xs[j] - m) * r * weight[i] + bias[i]; }
  }
  if (lid == 0u) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// out and inp are (N,C) (N = B*T); weight and bias are (C); mean and rstd are (N).
// out = (inp - mean) * rstd * weight + bias, saving mean and rstd = 1/sqrt(var + eps).
// One workgroup per row (2-D grid).
@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, lane: Lane) {
  let row = row_index(wid, nwg);
  if (row >= N) {
    return;
  }
  for (var j = 0u; j < PER; j++) {
    let i = lane.lid + j * WG;
    if (i < C) { xs[j] = inp[row * C + i]; }
  }
  normalise_row(lane, row);
}

// The residual connection fused into the LayerNorm that follows it: res = inp + inp2 is
// written (the backward pass reads it) and normalised as layernorm_forward does, one
// dispatch and one pass over the row instead of two. res, inp, inp2 are (N,C).
@compute @workgroup_size(WG)
fn layernorm_residual_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, lane: Lane) {
  let row = row_index(wid, nwg);
  if (row >= N) {
    return;
  }
  for (var j = 0u; j < PER; j++) {
    let i = row * C + lane.lid + j * WG;
    if (lane.lid + j * WG < C) {
      let v = inp[i] + inp2[i];
      res[i] = v;
      xs[j] = v;
    }
  }
  normalise_row(lane, row);
}

@group(0) @binding(0) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> binp: array<f32>;
@group(0) @binding(3) var<storage, read> bweight: array<f32>;
@group(0) @binding(4) var<storage, read> bmean: array<f32>;
@group(0) @binding(5) var<storage, read> brstd: array<f32>;

// dinp, dout and inp are (N,C); weight is (C); mean and rstd are (N) from the forward pass.
// dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = weight * dout
// (dinp = ... without ACCUMULATE).
// One workgroup per row (2-D grid).
@compute @workgroup_size(WG)
fn layernorm_backward_dinp(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, lane: Lane) {
  let lid = lane.lid;
  let row = row_index(wid, nwg);
  if (row >= N) {
    return;
  }
  let x = row * C;
  let m = bmean[row];
  let r = brstd[row];
  var sd = 0.0;
  var sdn = 0.0;
  for (var i = lid; i < C; i += WG) {
    let dnorm = bweight[i] * dout[x + i];
    sd += dnorm;
    sdn += dnorm * (binp[x + i] - m) * r;
  }
  let dnorm_mean = workgroup_sum(lane, sd) / f32(C);
  let dnorm_norm_mean = workgroup_sum(lane, sdn) / f32(C);
  for (var i = lid; i < C; i += WG) {
    let norm = (binp[x + i] - m) * r;
    var d = (bweight[i] * dout[x + i] - dnorm_mean - norm * dnorm_norm_mean) * r;
    if (ACCUMULATE) {
      d += dinp[x + i];
    }
    dinp[x + i] = d;
  }
}

@group(0) @binding(0) var<storage, read_write> partials: array<f32>;
@group(0) @binding(1) var<storage, read> pdout: array<f32>;
@group(0) @binding(2) var<storage, read> pinp: array<f32>;
@group(0) @binding(3) var<storage, read> pmean: array<f32>;
@group(0) @binding(4) var<storage, read> prstd: array<f32>;

// partials is (2, CHUNKS, C): sums over the rows of each chunk, in row order, of
// norm * dout (for dweight) and of dout (for dbias). dout and inp are (N,C); mean, rstd (N).
// Grid: (ceil(C / WG), CHUNKS); one invocation per (chunk, c).
@compute @workgroup_size(WG)
fn layernorm_backward_partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x * WG + lid;
  if (c >= C) {
    return;
  }
  let chunk = wid.y;
  var dw = 0.0;
  var db = 0.0;
  for (var n = chunk * ROW_CHUNK; n < min(N, (chunk + 1u) * ROW_CHUNK); n++) {
    let d = pdout[n * C + c];
    dw += (pinp[n * C + c] - pmean[n]) * prstd[n] * d;
    db += d;
  }
  partials[chunk * C + c] = dw;
  partials[(CHUNKS + chunk) * C + c] = db;
}

@group(0) @binding(0) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(1) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(2) var<storage, read> rpartials: array<f32>;

// dweight and dbias are (C); rpartials is (2, CHUNKS, C) from layernorm_backward_partial.
// dweight += sum over chunks (in order) of the first half; dbias likewise of the second.
@compute @workgroup_size(WG)
fn layernorm_backward_reduce(@builtin(global_invocation_id) g: vec3u) {
  let c = g.x;
  if (c >= C) {
    return;
  }
  var dw = 0.0;
  var db = 0.0;
  for (var chunk = 0u; chunk < CHUNKS; chunk++) {
    dw += rpartials[chunk * C + c];
    db += rpartials[(CHUNKS + chunk) * C + c];
  }
  dweight[c] += dw;
  dbias[c] += db;
}
