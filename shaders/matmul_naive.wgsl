// The untiled matrix product: the baseline bench/matmul.ts measures the tiled kernels
// of matmul.wgsl against (same semantics: transposes, bias, accumulate).

override M: u32 = 1;
override N: u32 = 1;
override K: u32 = 1;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
override HAS_BIAS: bool = false;
override WG_X: u32 = 16;
override WG_Y: u32 = 16;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(2) var<storage, read> b1: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

// out (M,N) = op(A) @ op(B) (+ bias) (+ out with ACCUMULATE); one invocation per element
// with no tiling: the baseline the benchmark measures the tiled kernels against.
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_naive(@builtin(global_invocation_id) g: vec3u) {
  let n = g.x;
  let m = g.y;
  if (m >= M || n >= N) {
    return;
  }
  var s = 0.0;
  for (var k = 0u; k < K; k++) {
    var a: f32;
    var b: f32;
    if (TRANS_A) { a = a1[k * M + m]; } else { a = a1[m * K + k]; }
    if (TRANS_B) { b = b1[n * K + k]; } else { b = b1[k * N + n]; }
    s = fma(a, b, s);
  }
  if (HAS_BIAS) {
    s += bias[n];
  }
  let o = m * N + n;
  if (ACCUMULATE) {
    s = out[o] + s;
  }
  out[o] = s;
}
