// The residual connection: an elementwise sum (llm.c's residual_forward / residual_backward).
// The step graph runs neither: the forward sum is fused into the LayerNorm that reads it
// (layernorm.wgsl, layernorm_residual_forward), and the backward is the gradient buffer
// that every branch adds into (graph.ts). Kept as the standalone op for other graphs.

override N: u32 = 1;
override WG: u32 = 256;

fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// out, a and b are (N) (N = B*T*C). out = a + b. Forward saves nothing.
@compute @workgroup_size(WG)
fn residual_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < N) {
    out[i] = a[i] + b[i];
  }
}

@group(0) @binding(0) var<storage, read_write> da: array<f32>;
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;

// da, db and dout are (N). da += dout; db += dout. da and db must be different buffers.
@compute @workgroup_size(WG)
fn residual_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < N) {
    let d = dout[i];
    da[i] += d;
    db[i] += d;
  }
}
