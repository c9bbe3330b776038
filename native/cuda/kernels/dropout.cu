// Inverted dropout with counter-based masks (src/reference/dropout.ts, src/core/dropout.ts):
// element i is kept when lowbias32(lowbias32(i ^ key) + key) >= round(p * 2^32), so the
// backward pass recomputes the forward's mask from the key alone and every backend draws
// the same mask bit for bit. A kept element is multiplied by f32(1/(1-p)), a dropped one by
// 0: one f32 product, rounded once to T, exactly as the reference rounds it.
#include <cmath>

#include "kernels.h"
#include "packed.cuh"

namespace kiln {
namespace {

constexpr int kThreads = 256;

template <class T>
__device__ __forceinline__ int chunk_len(size_t i, size_t n) {
  return n - i < (size_t)Packed<T>::size ? (int)(n - i) : Packed<T>::size;
}

// out may alias inp (no __restrict__): each thread reads its own chunk before writing it.
// The mask index is the element index mod 2^32, as JavaScript's `(i ^ key) >>> 0`.
template <class T>
__device__ __forceinline__ void apply_mask(T* out, const T* inp, size_t n, uint32_t key, uint32_t threshold, float scale, bool vec) {
  constexpr int V = Packed<T>::size;
  const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (i >= n) return;
  const int m = chunk_len<T>(i, n);
  float x[V];
  load_chunk<T>(x, inp + i, m, vec);
#pragma unroll
  for (int k = 0; k < V; k++) x[k] *= dropout_keep(key, (uint32_t)(i + k), threshold) ? scale : 0.0f;
  store_chunk<T>(out + i, x, m, vec);
}

template <class T>
__global__ void dropout_forward_kernel(T* out, const T* inp, size_t n, uint32_t key, uint32_t threshold, float scale, bool vec) {
  apply_mask<T>(out, inp, n, key, threshold, scale, vec);
}

template <class T>
__global__ void dropout_backward_kernel(T* dinp, const T* dout, size_t n, uint32_t key, uint32_t threshold, float scale, bool vec) {
  apply_mask<T>(dinp, dout, n, key, threshold, scale, vec);
}

template <class T>
void forward(void* out, const void* inp, size_t n, double p, uint32_t key, cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(inp);
  KILN_LAUNCH((dropout_forward_kernel<T>), blocks_for(n, (size_t)kThreads * Packed<T>::size), kThreads, 0, s, o, x, n, key,
              dropout_threshold(p), dropout_scale(p), aligned16(o, x));
}

template <class T>
void backward(void* dinp, const void* dout, size_t n, double p, uint32_t key, cudaStream_t s) {
  T* di = static_cast<T*>(dinp);
  const T* d = static_cast<const T*>(dout);
  KILN_LAUNCH((dropout_backward_kernel<T>), blocks_for(n, (size_t)kThreads * Packed<T>::size), kThreads, 0, s, di, d, n, key,
              dropout_threshold(p), dropout_scale(p), aligned16(di, d));
}

}  // namespace

uint32_t dropout_key(uint32_t step_seed, int micro_batch, int site) {
  const uint32_t counter = ((uint32_t)micro_batch & 0xffffu) << 16 | ((uint32_t)site & 0xffffu);
  return lowbias32(step_seed ^ lowbias32(counter));
}

// Math.round (half toward +infinity) done exactly: x - floor(x) is exact in double, where
// floor(x + 0.5) can round up just below one half.
uint32_t dropout_threshold(double p) {
  const double x = p * 4294967296.0;
  const double f = std::floor(x);
  const double r = x - f >= 0.5 ? f + 1.0 : f;
  if (!(r > 0.0)) return 0;  // p <= 0: keep everything, as the reference's negative threshold does
  return r >= 4294967295.0 ? 0xffffffffu : (uint32_t)r;
}

float dropout_scale(double p) { return (float)(1.0 / (1.0 - p)); }

void dropout_forward(Dtype dt, void* out, const void* inp, size_t N, double p, uint32_t key, cudaStream_t s) {
  if (N == 0) return;
  if (p == 0.0) {  // the identity: a copy, or nothing in place
    if (out != inp) cudaMemcpyAsync(out, inp, N * dtype_size(dt), cudaMemcpyDeviceToDevice, s);
    return;
  }
  if (dt == Dtype::F32) forward<float>(out, inp, N, p, key, s);
  else forward<bf16>(out, inp, N, p, key, s);
}

void dropout_backward(Dtype dt, void* dinp, const void* dout, size_t N, double p, uint32_t key, cudaStream_t s) {
  if (N == 0) return;
  if (p == 0.0) {
    if (dinp != dout) cudaMemcpyAsync(dinp, dout, N * dtype_size(dt), cudaMemcpyDeviceToDevice, s);
    return;
  }
  if (dt == Dtype::F32) backward<float>(dinp, dout, N, p, key, s);
  else backward<bf16>(dinp, dout, N, p, key, s);
}

}  // namespace kiln
