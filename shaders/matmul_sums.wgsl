// The fixed-order sums behind the matrix products: the split-K reduce (partial
// products of matmul.wgsl added in z order) and the bias gradient's column sums.
// Fixed order everywhere, so results are bit-identical run to run.

override M: u32 = 1;
override N: u32 = 1;
override ACCUMULATE: bool = false;
override HAS_BIAS: bool = false;
override WG_X: u32 = 256;
override WG_Y: u32 = 1;
override SPLITS: u32 = 1;    // split-K reduce: number of partial products
override ROW_CHUNK: u32 = 1; // bias gradient: rows summed per partial
override GELU_GRAD: bool = false;  // split-K reduce: the sum (+ bias) times gelu'(rgelu_in) (matmul_tiles.wgsl)

// #include gelu

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> rbias: array<f32>;
@group(0) @binding(3) var<storage, read> rgelu_in: array<f32>;
@group(0) @binding(1) var<storage, read> rows: array<f32>;  // matmul_colsum's input (binding 1 as partials is the reduce's)

// out is (M,N); partials is (SPLITS,M,N); rbias is (N); rgelu_in is (M,N).
// out = sum over z (in order) of partials[z] (+ rbias) (times gelu'(rgelu_in) with
// GELU_GRAD) (+ out with ACCUMULATE).
// One invocation per element over a 2-D grid of WG_X*WG_Y-invocation workgroups.
@compute @workgroup_size(WG_X * WG_Y)
fn matmul_splitk_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG_X * WG_Y + lid;
  if (i >= M * N) {
    return;
  }
  var s = 0.0;
  for (var z = 0u; z < SPLITS; z++) {
    s += partials[z * M * N + i];
  }
  if (HAS_BIAS) {
    s += rbias[i % N];
  }
  if (GELU_GRAD) {
    s *= gelu_grad(rgelu_in[i]);
  }
  if (ACCUMULATE) {
    s = out[i] + s;
  }
  out[i] = s;
}

// out is (ceil(M / ROW_CHUNK), N) column sums; rows is (M,N), e.g. dout.
// out[r, n] = sum of A[m, n] over rows m of chunk r, in row order (+ out with ACCUMULATE).
// Grid: (ceil(N / (WG_X*WG_Y)), ceil(M / ROW_CHUNK)).
@compute @workgroup_size(WG_X * WG_Y)
fn matmul_colsum(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wid.x * WG_X * WG_Y + lid;
  if (n >= N) {
    return;
  }
  let r = wid.y;
  let m_end = min(M, (r + 1u) * ROW_CHUNK);
  var s = 0.0;
  for (var m = r * ROW_CHUNK; m < m_end; m++) {
    s += rows[m * N + n];
  }
  let o = r * N + n;
  if (ACCUMULATE) {
    s = out[o] + s;
  }
  out[o] = s;
}
