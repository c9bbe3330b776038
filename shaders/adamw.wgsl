// Global gradient norm and AdamW (PyTorch semantics: torch.nn.utils.clip_grad_norm_ and
// torch.optim.AdamW, as src/reference/adamw.ts), with everything that changes per step
// read from small GPU buffers, so a step never reads back mid-way:
//   hp   (written by the host before each submit; layout in src/backends/webgpu/ops/adamw.ts)
//   norm (written by grad_norm_final: norm[0] = ||grads||_2)
// The norm is a two-level reduction in a fixed order: each workgroup sums the squares
// of one CHUNK of elements into a partial, then one workgroup sums the partials.

override N: u32 = 1;          // grad_norm_partial: elements in this piece; adam_update: elements to update
override NPART: u32 = 1;      // grad_norm_final: partial sums to add
override PER_THREAD: u32 = 16; // grad_norm_partial: elements per invocation (CHUNK = WG * PER_THREAD)
override OFFSET: u32 = 0;     // adamw_update: first element within the bound ranges (< 64)
override DECAY: bool = true;  // adamw_update: apply weight decay to this range
override WG: u32 = 256;       // invocations per workgroup (a power of two)

var<workgroup> red: array<f32, WG>;

// The invocation's place in the workgroup (and, with subgroups, in its subgroup), and
// the sum of x over the workgroup in a fixed order: with subgroups, subgroupAdd within
// each subgroup and the subgroup sums in subgroup_id order; without, a tree in workgroup
// memory (the orders differ, so the two variants differ in the last bits).
// #if subgroups
struct Lane {
  @builtin(local_invocation_index) tid: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_id) sg_id: u32,
  @builtin(num_subgroups) num_sg: u32,
}

fn wg_sum(x: f32, lane: Lane) -> f32 {
  let s = subgroupAdd(x);
  if (lane.sg_lane == 0u) { red[lane.sg_id] = s; }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < lane.num_sg; i++) { total += red[i]; }
  return total;
}
// #else
struct Lane {
  @builtin(local_invocation_index) tid: u32,
}

fn wg_sum(x: f32, lane: Lane) -> f32 {
  let tid = lane.tid;
  red[tid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] += red[tid + s]; }
    workgroupBarrier();
  }
  return red[0];
}
// #endif

@group(0) @binding(0) var<storage, read_write> gp_partials: array<f32>;
@group(0) @binding(1) var<storage, read> gp_grads: array<f32>;

// partials is (ceil(N/CHUNK)), grads is (N). Workgroup w: partials[w] = sum of grads[i]^2
// over its CHUNK = WG*PER_THREAD elements (invocation j takes w*CHUNK + j + WG*e, in order
// of e, then wg_sum). 2-D grid of workgroups.
@compute @workgroup_size(WG)
fn grad_norm_partial(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, lane: Lane) {
  let tid = lane.tid;
  let w = wid.y * nwg.x + wid.x;
  let chunk = WG * PER_THREAD;
  if (w * chunk >= N) { return; }
  var s = 0.0;
  for (var e = 0u; e < PER_THREAD; e++) {
    let i = w * chunk + e * WG + tid;
    if (i < N) {
      let g = gp_grads[i];
      s += g * g;
    }
  }
  let total = wg_sum(s, lane);
  if (tid == 0u) { gp_partials[w] = total; }
}

@group(0) @binding(0) var<storage, read_write> gf_norm: array<f32>;
@group(0) @binding(1) var<storage, read> gf_partials: array<f32>;

// norm is (1), partials is (NPART). One workgroup: norm[0] = sqrt(sum of the partials).
@compute @workgroup_size(WG)
fn grad_norm_final(lane: Lane) {
  let tid = lane.tid;
  var s = 0.0;
  for (var i = tid; i < NPART; i += WG) { s += gf_partials[i]; }
  let total = wg_sum(s, lane);
  if (tid == 0u) { gf_norm[0] = sqrt(total); }
}

// The hyperparameter buffer (adamwHyperBuffer packs it; indices must match HP_* there).
struct Hyper {
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weight_decay: f32,
  grad_clip: f32,
  step_size: f32,   // lr / (1 - beta1^t), computed in f64 on the host
  sqrt_bc2: f32,    // sqrt(1 - beta2^t)
  t: f32,
}

@group(0) @binding(0) var<storage, read_write> au_params: array<f32>;
@group(0) @binding(1) var<storage, read_write> au_m: array<f32>;
@group(0) @binding(2) var<storage, read_write> au_v: array<f32>;
@group(0) @binding(3) var<storage, read> au_grads: array<f32>;
@group(0) @binding(4) var<storage, read> au_hp: Hyper;
@group(0) @binding(5) var<storage, read> au_norm: array<f32>;

// params, m, v, grads are ranges of the flat (numParams) buffers, updated at elements
// OFFSET..OFFSET+N; hp as above; norm is (1). One invocation per element:
//   g = grad * clip, clip = min(1, grad_clip / (norm + 1e-6)) (1 when grad_clip is 0)
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p = p (1 - lr wd) [DECAY only] - step_size * m / (sqrt(v) / sqrt_bc2 + eps)
@compute @workgroup_size(WG)
fn adamw_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * nwg.x + wid.x) * WG + lid;
  if (idx >= N) { return; }
  let i = OFFSET + idx;
  let hp = au_hp;
  var clip = 1.0;
  if (hp.grad_clip > 0.0) { clip = min(1.0, hp.grad_clip / (au_norm[0] + 1e-6)); }
  let g = au_grads[i] * clip;
  let m = hp.beta1 * au_m[i] + (1.0 - hp.beta1) * g;
  let v = hp.beta2 * au_v[i] + (1.0 - hp.beta2) * g * g;
  au_m[i] = m;
  au_v[i] = v;
  var p = au_params[i];
  if (DECAY) { p *= 1.0 - hp.lr * hp.weight_decay; }
  au_params[i] = p - hp.step_size * (m / (sqrt(v) / hp.sqrt_bc2 + hp.eps));
}
