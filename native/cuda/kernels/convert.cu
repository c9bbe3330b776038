// f32 <-> bf16 conversion of flat arrays (the bf16 shadow of the f32 master weights, and
// checkpoints). Memory-bound: each thread moves one 16-byte bf16 chunk (8 elements) and
// its two 16-byte f32 halves.
#include "kernels.h"
#include "packed.cuh"

namespace kiln {
namespace {

constexpr int kVec = Packed<bf16>::size;  // 8
constexpr int kThreads = 256;

__device__ __forceinline__ int chunk_len(size_t i, size_t n) { return n - i < (size_t)kVec ? (int)(n - i) : kVec; }

__global__ void f32_to_bf16_kernel(bf16* __restrict__ dst, const float* __restrict__ src, size_t n, bool vec) {
  const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * kVec;
  if (i >= n) return;
  const int m = chunk_len(i, n);
  float f[kVec];
  load_f32<kVec>(f, src + i, m, vec);
  store_chunk<bf16>(dst + i, f, m, vec);
}

__global__ void bf16_to_f32_kernel(float* __restrict__ dst, const bf16* __restrict__ src, size_t n, bool vec) {
  const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * kVec;
  if (i >= n) return;
  const int m = chunk_len(i, n);
  float f[kVec];
  load_chunk<bf16>(f, src + i, m, vec);
  store_f32<kVec>(dst + i, f, m, vec);
}

}  // namespace

// kiln::bf16 is the raw bits in a struct (portable.cuh), so the uint16_t arrays of the
// interface are viewed as bf16 to share the chunk helpers.
void f32_to_bf16(uint16_t* dst, const float* src, size_t n, cudaStream_t s) {
  if (n == 0) return;
  bf16* d = reinterpret_cast<bf16*>(dst);
  KILN_LAUNCH(f32_to_bf16_kernel, blocks_for(n, (size_t)kThreads * kVec), kThreads, 0, s, d, src, n, aligned16(d, src));
}

void bf16_to_f32(float* dst, const uint16_t* src, size_t n, cudaStream_t s) {
  if (n == 0) return;
  const bf16* b = reinterpret_cast<const bf16*>(src);
  KILN_LAUNCH(bf16_to_f32_kernel, blocks_for(n, (size_t)kThreads * kVec), kThreads, 0, s, dst, b, n, aligned16(dst, b));
}

}  // namespace kiln
