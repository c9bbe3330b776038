// Entry points of kernels/matmul.cu (tests/cuda/matmul.test.ts, and the GEMM benchmark of
// the GPU visit).
//
// matmul
//   arrays: 0 C    Float32Array, in/out: (M, ldc) row-major; read when accumulate, written
//                  back (as f32 values of C's dtype: bf16-rounded when cDtype is bf16)
//           1 A    Float32Array: stored (M, lda), or (K, lda) when transA
//           2 B    Float32Array: stored (K, ldb), or (N, ldb) when transB
//           3 bias Float32Array (N), or empty for none
//   nums:   abDtype, cDtype, M, N, K, transA, transB, accumulate, impl (kernels.h GemmImpl:
//           0 auto, 1 simt, 2 tensor-core, 3 cublaslt), then optionally lda, ldb, ldc
//           (omitted or 0: packed, i.e. the stored row length)
//   A and B are uploaded in abDtype (bf16: rounded to nearest even), C in cDtype.
//
// biasBackward
//   arrays: 0 dbias Float32Array (N), in/out: accumulates the column sums of dout
//           1 dout  Float32Array (M, N), uploaded in dtype
//   nums:   dtype, M, N
//
// matmulBench
//   arrays: 0 out Float32Array (>= 2): [mean ms per call, TFLOP/s]
//   nums:   M, N, K, abDtype, impl, iters, then optionally transA, transB
//   C = A @ B on seeded values in [-1, 1), C in abDtype (as the model's forward), one
//   untimed warm-up call (cuBLASLt's heuristic, our kernels' attribute setup), then `iters`
//   calls between two events.
#include <cmath>
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {
namespace {

GemmImpl gemm_impl(const Args& args, size_t i) {
  const int v = args.integer(i);
  if (v < 0 || v > 3) throw std::invalid_argument("number " + std::to_string(i) + " must be a GEMM impl (0 auto .. 3 cublaslt)");
  const GemmImpl impl = static_cast<GemmImpl>(v);
  if (!gemm_available(impl)) throw std::invalid_argument("GEMM impl " + std::to_string(v) + " is not part of this build");
  return impl;
}

int optional_int(const Args& args, size_t i, int fallback) {
  if (i >= args.nums.size()) return fallback;
  const int v = args.integer(i);
  return v == 0 ? fallback : v;
}

void need(const Args& args, size_t i, size_t elems, const char* what) {
  if (args.len(i) < elems)
    throw std::invalid_argument(std::string(what) + " needs " + std::to_string(elems) + " elements, got " + std::to_string(args.len(i)));
}

}  // namespace

KILN_ENTRY(matmul) {
  const Dtype ab = args.dtype(0), c = args.dtype(1);
  const int M = args.integer(2), N = args.integer(3), K = args.integer(4);
  const bool transA = args.integer(5) != 0, transB = args.integer(6) != 0, accumulate = args.integer(7) != 0;
  const GemmImpl impl = gemm_impl(args, 8);
  if (M < 1 || N < 1 || K < 1) throw std::invalid_argument("matmul: M, N, K must be >= 1");
  const int lda = optional_int(args, 9, transA ? M : K);
  const int ldb = optional_int(args, 10, transB ? K : N);
  const int ldc = optional_int(args, 11, N);
  // Elements up to the last one read: (rows - 1) * ld + row length.
  const size_t a_elems = (size_t)((transA ? K : M) - 1) * lda + (transA ? M : K);
  const size_t b_elems = (size_t)((transB ? N : K) - 1) * ldb + (transB ? K : N);
  const size_t c_elems = (size_t)(M - 1) * ldc + N;
  need(args, 0, c_elems, "matmul: C");
  need(args, 1, a_elems, "matmul: A");
  need(args, 2, b_elems, "matmul: B");
  const bool has_bias = args.len(3) > 0;
  if (has_bias) need(args, 3, N, "matmul: bias");

  ActArray dC(c, args.len(0), args.f32(0));
  ActArray dA(ab, args.len(1), args.f32(1));
  ActArray dB(ab, args.len(2), args.f32(2));
  DeviceArray<float> dbias(has_bias ? N : 0, has_bias ? args.f32(3) : nullptr);
  Gemm g{};
  g.ab = ab, g.c = c;
  g.A = dA.get(), g.lda = lda, g.transA = transA;
  g.B = dB.get(), g.ldb = ldb, g.transB = transB;
  g.C = dC.get(), g.ldc = ldc;
  g.bias = has_bias ? dbias.get() : nullptr;
  g.M = M, g.N = N, g.K = K;
  g.accumulate = accumulate;
  matmul(g, 0, impl);
  sync("matmul");
  dC.download(args.f32(0));
}

KILN_ENTRY(biasBackward) {
  const Dtype dt = args.dtype(0);
  const int M = args.integer(1), N = args.integer(2);
  if (M < 1 || N < 1) throw std::invalid_argument("biasBackward: M, N must be >= 1");
  need(args, 0, N, "biasBackward: dbias");
  need(args, 1, (size_t)M * N, "biasBackward: dout");
  DeviceArray<float> dbias(N, args.f32(0));
  ActArray dout(dt, (size_t)M * N, args.f32(1));
  DeviceArray<float> scratch(bias_backward_scratch_floats(M, N));
  bias_backward(dt, dbias.get(), scratch.get(), dout.get(), M, N, 0);
  sync("biasBackward");
  dbias.download(args.f32(0));
}

KILN_ENTRY(matmulBench) {
  need(args, 0, 2, "matmulBench: out");
  const int M = args.integer(0), N = args.integer(1), K = args.integer(2);
  const Dtype ab = args.dtype(3);
  const GemmImpl impl = gemm_impl(args, 4);
  const int iters = args.integer(5);
  const bool transA = optional_int(args, 6, 0) != 0, transB = optional_int(args, 7, 0) != 0;
  if (M < 1 || N < 1 || K < 1 || iters < 1) throw std::invalid_argument("matmulBench: M, N, K, iters must be >= 1");

  // Seeded host values (a small LCG: the operands' contents do not change the speed, but
  // zeros or denormals could).
  auto fill = [](size_t n, uint32_t seed) {
    std::vector<float> v(n);
    uint32_t x = seed;
    for (auto& f : v) {
      x = x * 1664525u + 1013904223u;
      f = (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
    }
    return v;
  };
  const std::vector<float> ha = fill((size_t)M * K, 1), hb = fill((size_t)K * N, 2);
  ActArray dA(ab, ha.size(), ha.data()), dB(ab, hb.size(), hb.data()), dC(ab, (size_t)M * N);
  Gemm g{};
  g.ab = ab, g.c = ab;
  g.A = dA.get(), g.lda = transA ? M : K, g.transA = transA;
  g.B = dB.get(), g.ldb = transB ? K : N, g.transB = transB;
  g.C = dC.get(), g.ldc = N;
  g.bias = nullptr;
  g.M = M, g.N = N, g.K = K;
  g.accumulate = false;

  matmul(g, 0, impl);
  sync("matmulBench warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaEventRecord(start, 0), "cudaEventRecord");
  for (int i = 0; i < iters; i++) matmul(g, 0, impl);
  check(cudaEventRecord(stop, 0), "cudaEventRecord");
  check(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0;
  const cudaError_t err = cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  check(err, "cudaEventElapsedTime");
  sync("matmulBench");
  const double per_call = ms / iters;
  float* out = args.f32(0);
  out[0] = (float)per_call;
  out[1] = per_call > 0 ? (float)(2.0 * M * N * K / (per_call * 1e-3) / 1e12) : 0.0f;
}

}  // namespace kiln::entry
