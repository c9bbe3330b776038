// Dropout on a tensor (nanoGPT's nn.Dropout on the embedding sum and on each branch's
// output before its residual add), forward and backward; the mask is dropout_mask.wgsl's.
// The attention probabilities' dropout happens inside the attention kernels instead.

// #include dropout_mask

override N: u32 = 1;
override WG: u32 = 256;

fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> fkey: array<u32>;

// x is (N), in place: x[i] *= drop_factor(key, i). One invocation per element.
@compute @workgroup_size(WG)
fn dropout_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < N) {
    x[i] *= drop_factor(fkey[0], i);
  }
}

@group(0) @binding(0) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> bkey: array<u32>;

// dinp and dout are (N). dinp[i] = dout[i] * drop_factor(key, i): written fresh (the step
// graph hands it to the branch as its output gradient). One invocation per element.
@compute @workgroup_size(WG)
fn dropout_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < N) {
    dinp[i] = dout[i] * drop_factor(bkey[0], i);
  }
}
