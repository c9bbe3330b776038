// GELU, GPT-2's tanh approximation (src/reference/gelu.ts), forward and backward.
// Memory-bound elementwise kernels: one 16-byte chunk of T per thread.
//
// 0.5 x (1 + tanh(u)) is evaluated as x * sigmoid(2u) = x / (1 + exp(-2u)), the same
// function: for x < 0, 1 + tanh(u) cancels, turning tanhf's absolute error into a large
// relative error of a result near 0, while the sigmoid form keeps a few-ulp relative error
// for every x, and exp overflowing to +inf gives the exact limit -0.
#include "kernels.h"
#include "packed.cuh"

namespace kiln {
namespace {

constexpr int kThreads = 256;
constexpr float kScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kCube = 0.044715f;

__device__ __forceinline__ float gelu(float x) {
  const float u = kScale * (x + kCube * x * x * x);
  return x / (1.0f + expf(-2.0f * u));
}

// d/dx [x s(2u)] = s + x * 2 s (1 - s) * u', with s = sigmoid(2u), u' = sqrt(2/pi)(1 + 3c x^2);
// 0.5(1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s) make it the reference's expression,
// and 1 - s = e s keeps its relative accuracy where s is near 1.
// Beyond |x| = 10 the derivative is 0 or 1 to within 1e-35, so x is clamped there: that
// keeps e finite (|2u| <= 87.3 < log(FLT_MAX)) and x^2 from overflowing, so no inf * 0
// turns a saturated tail into NaN. A NaN x fails both comparisons and stays NaN.
__device__ __forceinline__ float gelu_grad(float x) {
  x = x < -10.0f ? -10.0f : (x > 10.0f ? 10.0f : x);
  const float u = kScale * (x + kCube * x * x * x);
  const float e = expf(-2.0f * u);
  const float s = 1.0f / (1.0f + e);
  return s + 2.0f * x * s * (e * s) * kScale * (1.0f + 3.0f * kCube * x * x);
}

template <class T>
__device__ __forceinline__ int chunk_len(size_t i, size_t n) {
  return n - i < (size_t)Packed<T>::size ? (int)(n - i) : Packed<T>::size;
}

// out may alias inp (no __restrict__): each thread reads its own chunk before writing it.
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n, bool vec) {
  constexpr int V = Packed<T>::size;
  const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (i >= n) return;
  const int m = chunk_len<T>(i, n);
  float x[V];
  load_chunk<T>(x, inp + i, m, vec);
#pragma unroll
  for (int k = 0; k < V; k++) x[k] = gelu(x[k]);
  store_chunk<T>(out + i, x, m, vec);
}

// dinp may alias dout (not __restrict__): each thread reads its chunk of both before it
// writes that chunk, and no thread touches another's.
template <class T>
__global__ void gelu_backward_kernel(T* dinp, const T* __restrict__ inp, const T* dout, size_t n, bool vec) {
  constexpr int V = Packed<T>::size;
  const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (i >= n) return;
  const int m = chunk_len<T>(i, n);
  float x[V], d[V];
  load_chunk<T>(x, inp + i, m, vec);
  load_chunk<T>(d, dout + i, m, vec);
#pragma unroll
  for (int k = 0; k < V; k++) d[k] *= gelu_grad(x[k]);
  store_chunk<T>(dinp + i, d, m, vec);
}

template <class T>
void forward(void* out, const void* inp, size_t n, cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(inp);
  KILN_LAUNCH((gelu_forward_kernel<T>), blocks_for(n, (size_t)kThreads * Packed<T>::size), kThreads, 0, s, o, x, n, aligned16(o, x));
}

template <class T>
void backward(void* dinp, const void* inp, const void* dout, size_t n, cudaStream_t s) {
  T* di = static_cast<T*>(dinp);
  const T* x = static_cast<const T*>(inp);
  const T* d = static_cast<const T*>(dout);
  KILN_LAUNCH((gelu_backward_kernel<T>), blocks_for(n, (size_t)kThreads * Packed<T>::size), kThreads, 0, s, di, x, d, n,
              aligned16(di, x, d));
}

}  // namespace

void gelu_forward(Dtype dt, void* out, const void* inp, size_t N, cudaStream_t s) {
  if (N == 0) return;
  if (dt == Dtype::F32) forward<float>(out, inp, N, s);
  else forward<bf16>(out, inp, N, s);
}

void gelu_backward(Dtype dt, void* dinp, const void* inp, const void* dout, size_t N, cudaStream_t s) {
  if (N == 0) return;
  if (dt == Dtype::F32) backward<float>(dinp, inp, dout, N, s);
  else backward<bf16>(dinp, inp, dout, N, s);
}

}  // namespace kiln
