// Small kernels shared by the step graph.

override N: u32 = 1;         // elements
override VALUE: f32 = 0.0;   // fill value
override WG: u32 = 256;      // invocations per workgroup

@group(0) @binding(0) var<storage, read_write> buf: array<f32>;

// buf is (N). buf[i] = VALUE. One invocation per element over a 2-D grid (grid1d).
@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;
  if (i < N) {
    buf[i] = VALUE;
  }
}
