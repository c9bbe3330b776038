// LayerNorm forward and backward, the residual add, and the two fused (llm.c's
// layernorm_forward_kernel3, fused_residual_forward_kernel5, layernorm_backward_kernel10),
// against src/reference/layernorm.ts and residual.ts.
//
// Forward: one warp per row. A row is read three times (sum, centred sum of squares,
// normalise): the two-pass variance matches the reference's and cannot go negative, and
// the re-reads hit L1/L2, since a warp's row is at most a few KiB.
//
// Backward, deterministic without float atomics: block k owns rows [32k, 32k+32). It first
// reduces each row's two dot products (a warp per row), then walks its rows in order with
// one thread per column chunk, updating dinp and summing that block's dweight/dbias
// partials in registers; the partials go to scratch, and a second kernel adds them up in a
// fixed order into dweight/dbias.
#include <algorithm>

#include "kernels.h"
#include "packed.cuh"

namespace kiln {
namespace {

constexpr float kEps = 1e-5f;
constexpr unsigned kFull = 0xffffffffu;
constexpr int kFwdWarps = 8;    // rows per forward block
constexpr int kBwdRows = 32;    // rows per backward block: the granularity of the dweight/dbias partials
constexpr int kBwdMaxThreads = 256;
constexpr int kReduceGroups = 8;  // partial rows summed side by side per column in the reduction

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// One row of LayerNorm by one warp; when kFused, the row is first a + b, rounded to T and
// stored to `residual`, and normalised as stored (so it equals layernorm_forward of the
// residual the next layer reads). `src` is the row to normalise: inp, or residual.
template <class T, bool kFused>
__device__ __forceinline__ void layernorm_row(T* out, float* mean, float* rstd, T* residual, const T* a, const T* b, const T* src,
                                              const float* w, const float* bias, int row, int C, bool vec) {
  constexpr int V = Packed<T>::size;
  const int lane = threadIdx.x % 32;
  const size_t base = (size_t)row * C;

  float sum = 0.0f;
  for (int c = lane * V; c < C; c += 32 * V) {
    const int m = min(V, C - c);
    float x[V];
    if (kFused) {
      float y[V];
      load_chunk<T>(x, a + base + c, m, vec);
      load_chunk<T>(y, b + base + c, m, vec);
#pragma unroll
      for (int k = 0; k < V; k++) x[k] = to_float(from_float<T>(x[k] + y[k]));
      store_chunk<T>(residual + base + c, x, m, vec);
    } else {
      load_chunk<T>(x, src + base + c, m, vec);
    }
#pragma unroll
    for (int k = 0; k < V; k++) sum += x[k];  // zero past m
  }
  const float mu = warp_sum(sum) / C;

  // In the fused kernel this re-reads the residual this same thread just stored (the
  // chunk-to-lane mapping is the same in every pass), so program order makes it visible.
  float var = 0.0f;
  for (int c = lane * V; c < C; c += 32 * V) {
    const int m = min(V, C - c);
    float x[V];
    load_chunk<T>(x, src + base + c, m, vec);
#pragma unroll
    for (int k = 0; k < V; k++) {
      const float d = k < m ? x[k] - mu : 0.0f;
      var += d * d;
    }
  }
  const float s = rsqrtf(warp_sum(var) / C + kEps);

  for (int c = lane * V; c < C; c += 32 * V) {
    const int m = min(V, C - c);
    float x[V], wf[V], bf[V];
    load_chunk<T>(x, src + base + c, m, vec);
    load_f32<V>(wf, w + c, m, vec);
    load_f32<V>(bf, bias + c, m, vec);
#pragma unroll
    for (int k = 0; k < V; k++) x[k] = (x[k] - mu) * s * wf[k] + bf[k];
    store_chunk<T>(out + base + c, x, m, vec);
  }
  if (lane == 0) {
    mean[row] = mu;
    rstd[row] = s;
  }
}

template <class T>
__global__ void __launch_bounds__(kFwdWarps * 32)
    layernorm_forward_kernel(T* out, float* __restrict__ mean, float* __restrict__ rstd, const T* inp, const float* __restrict__ w,
                             const float* __restrict__ b, int N, int C, bool vec) {
  const int row = blockIdx.x * kFwdWarps + threadIdx.x / 32;
  if (row >= N) return;  // whole warps leave together, so the shuffles stay full-mask
  layernorm_row<T, false>(out, mean, rstd, nullptr, nullptr, nullptr, inp, w, b, row, C, vec);
}

template <class T>
__global__ void __launch_bounds__(kFwdWarps * 32)
    fused_residual_layernorm_forward_kernel(T* residual, T* out, float* __restrict__ mean, float* __restrict__ rstd, const T* a,
                                            const T* b, const float* __restrict__ w, const float* __restrict__ bias, int N, int C,
                                            bool vec) {
  const int row = blockIdx.x * kFwdWarps + threadIdx.x / 32;
  if (row >= N) return;
  layernorm_row<T, true>(out, mean, rstd, residual, a, b, residual, w, bias, row, C, vec);
}

// scratch[blockIdx.x] holds this block's partials: dweight in [0, C), dbias in [C, 2C).
template <class T>
__global__ void __launch_bounds__(kBwdMaxThreads)
    layernorm_backward_kernel(T* dinp, float* __restrict__ scratch, const T* __restrict__ dout, const T* __restrict__ inp,
                              const float* __restrict__ w, const float* __restrict__ mean, const float* __restrict__ rstd, int N, int C,
                              bool vec) {
  constexpr int V = Packed<T>::size;
  __shared__ float s_mean[kBwdRows], s_rstd[kBwdRows], s_dnorm_mean[kBwdRows], s_dnorm_norm_mean[kBwdRows];
  const int row0 = blockIdx.x * kBwdRows;
  const int rows = min(kBwdRows, N - row0);
  const int lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;

  // Per row: mean(dnorm) and mean(dnorm * norm), dnorm = weight * dout.
  for (int r = threadIdx.x / 32; r < rows; r += warps) {
    const size_t base = (size_t)(row0 + r) * C;
    const float mu = mean[row0 + r], s = rstd[row0 + r];
    float dm = 0.0f, dnm = 0.0f;
    for (int c = lane * V; c < C; c += 32 * V) {
      const int m = min(V, C - c);
      float x[V], d[V], wf[V];
      load_chunk<T>(x, inp + base + c, m, vec);
      load_chunk<T>(d, dout + base + c, m, vec);
      load_f32<V>(wf, w + c, m, vec);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float dnorm = wf[k] * d[k];  // zero past m
        dm += dnorm;
        dnm += dnorm * (x[k] - mu) * s;
      }
    }
    dm = warp_sum(dm);
    dnm = warp_sum(dnm);
    if (lane == 0) {
      s_mean[r] = mu;
      s_rstd[r] = s;
      s_dnorm_mean[r] = dm / C;
      s_dnorm_norm_mean[r] = dnm / C;
    }
  }
  __syncthreads();  // the row statistics above were written by other warps

  float* part = scratch + (size_t)blockIdx.x * 2 * C;
  for (int c = threadIdx.x * V; c < C; c += blockDim.x * V) {
    const int m = min(V, C - c);
    float wf[V], dw[V], db[V];
    load_f32<V>(wf, w + c, m, vec);
#pragma unroll
    for (int k = 0; k < V; k++) dw[k] = db[k] = 0.0f;
    for (int r = 0; r < rows; r++) {
      const size_t base = (size_t)(row0 + r) * C;
      const float mu = s_mean[r], s = s_rstd[r], dm = s_dnorm_mean[r], dnm = s_dnorm_norm_mean[r];
      float x[V], d[V], di[V];
      load_chunk<T>(x, inp + base + c, m, vec);
      load_chunk<T>(d, dout + base + c, m, vec);
      load_chunk<T>(di, dinp + base + c, m, vec);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float norm = (x[k] - mu) * s;
        dw[k] += norm * d[k];
        db[k] += d[k];
        di[k] += (wf[k] * d[k] - dm - norm * dnm) * s;
      }
      store_chunk<T>(dinp + base + c, di, m, vec);
    }
    store_f32<V>(part + c, dw, m, vec);
    store_f32<V>(part + C + c, db, m, vec);
  }
}

// dweight[c] += sum over blocks p of scratch[p][c] (and dbias from [C + c]), in a fixed
// order: group g sums p = g, g + 8, ... ascending, then the 8 group sums are added in order.
// 32 columns per block, so every load is a coalesced 128-byte row segment.
__global__ void __launch_bounds__(32 * kReduceGroups)
    layernorm_backward_reduce_kernel(float* __restrict__ dw, float* __restrict__ db, const float* __restrict__ scratch, int parts, int C) {
  __shared__ float s_w[kReduceGroups][32], s_b[kReduceGroups][32];
  const int lane = threadIdx.x % 32, g = threadIdx.x / 32;
  const int c = blockIdx.x * 32 + lane;
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int p = g; p < parts; p += kReduceGroups) {
      aw += scratch[(size_t)p * 2 * C + c];
      ab += scratch[(size_t)p * 2 * C + C + c];
    }
  }
  s_w[g][lane] = aw;
  s_b[g][lane] = ab;
  __syncthreads();
  if (g == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
#pragma unroll
    for (int k = 0; k < kReduceGroups; k++) {
      tw += s_w[k][lane];
      tb += s_b[k][lane];
    }
    dw[c] += tw;
    db[c] += tb;
  }
}

template <class T>
__device__ __forceinline__ int chunk_len(size_t i, size_t n) {
  return n - i < (size_t)Packed<T>::size ? (int)(n - i) : Packed<T>::size;
}

// out may alias a or b: each thread reads its own chunk of both before writing it.
template <class T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, size_t n, bool vec) {
  constexpr int V = Packed<T>::size;
  const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
  if (i >= n) return;
  const int m = chunk_len<T>(i, n);
  float x[V], y[V];
  load_chunk<T>(x, a + i, m, vec);
  load_chunk<T>(y, b + i, m, vec);
#pragma unroll
  for (int k = 0; k < V; k++) x[k] += y[k];
  store_chunk<T>(out + i, x, m, vec);
}

int backward_blocks(int N) { return (N + kBwdRows - 1) / kBwdRows; }

// Threads per backward block: one per column chunk, whole warps, at most kBwdMaxThreads
// (wider rows loop); a narrow row gets a narrow block rather than idle threads.
int backward_threads(int C, int V) {
  const int chunks = (C + V - 1) / V;
  return std::min(kBwdMaxThreads, (chunks + 31) / 32 * 32);
}

template <class T>
void ln_forward(void* out, float* mean, float* rstd, const void* inp, const float* w, const float* b, int N, int C, cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(inp);
  const bool vec = C % Packed<T>::size == 0 && aligned16(o, x, w, b);
  KILN_LAUNCH((layernorm_forward_kernel<T>), blocks_for(N, kFwdWarps), kFwdWarps * 32, 0, s, o, mean, rstd, x, w, b, N, C, vec);
}

template <class T>
void fused_forward(void* residual, void* out, float* mean, float* rstd, const void* a, const void* b, const float* w, const float* bias,
                   int N, int C, cudaStream_t s) {
  T* r = static_cast<T*>(residual);
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  const bool vec = C % Packed<T>::size == 0 && aligned16(r, o, x, y, w, bias);
  KILN_LAUNCH((fused_residual_layernorm_forward_kernel<T>), blocks_for(N, kFwdWarps), kFwdWarps * 32, 0, s, r, o, mean, rstd, x, y, w,
              bias, N, C, vec);
}

template <class T>
void ln_backward(void* dinp, float* dw, float* db, float* scratch, const void* dout, const void* inp, const float* w, const float* mean,
                 const float* rstd, int N, int C, cudaStream_t s) {
  T* di = static_cast<T*>(dinp);
  const T* d = static_cast<const T*>(dout);
  const T* x = static_cast<const T*>(inp);
  const bool vec = C % Packed<T>::size == 0 && aligned16(di, d, x, w, scratch);
  const int parts = backward_blocks(N);
  KILN_LAUNCH((layernorm_backward_kernel<T>), parts, backward_threads(C, Packed<T>::size), 0, s, di, scratch, d, x, w, mean, rstd, N,
              C, vec);
  KILN_LAUNCH(layernorm_backward_reduce_kernel, blocks_for(C, 32), 32 * kReduceGroups, 0, s, dw, db, scratch, parts, C);
}

template <class T>
void residual(void* out, const void* a, const void* b, size_t N, cudaStream_t s) {
  constexpr int kThreads = 256;
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  KILN_LAUNCH((residual_forward_kernel<T>), blocks_for(N, (size_t)kThreads * Packed<T>::size), kThreads, 0, s, o, x, y, N,
              aligned16(o, x, y));
}

}  // namespace

void layernorm_forward(Dtype dt, void* out, float* mean, float* rstd, const void* inp, const float* w, const float* b, int N, int C,
                       cudaStream_t s) {
  if (N <= 0 || C <= 0) return;
  if (dt == Dtype::F32) ln_forward<float>(out, mean, rstd, inp, w, b, N, C, s);
  else ln_forward<bf16>(out, mean, rstd, inp, w, b, N, C, s);
}

void fused_residual_layernorm_forward(Dtype dt, void* residual, void* out, float* mean, float* rstd, const void* a, const void* b,
                                      const float* w, const float* bias, int N, int C, cudaStream_t s) {
  if (N <= 0 || C <= 0) return;
  if (dt == Dtype::F32) fused_forward<float>(residual, out, mean, rstd, a, b, w, bias, N, C, s);
  else fused_forward<bf16>(residual, out, mean, rstd, a, b, w, bias, N, C, s);
}

size_t layernorm_backward_scratch_floats(int N, int C) { return (size_t)backward_blocks(N) * 2 * (size_t)C; }

void layernorm_backward(Dtype dt, void* dinp, float* dw, float* db, float* scratch, const void* dout, const void* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C, cudaStream_t s) {
  if (N <= 0 || C <= 0) return;
  if (dt == Dtype::F32) ln_backward<float>(dinp, dw, db, scratch, dout, inp, w, mean, rstd, N, C, s);
  else ln_backward<bf16>(dinp, dw, db, scratch, dout, inp, w, mean, rstd, N, C, s);
}

void residual_forward(Dtype dt, void* out, const void* a, const void* b, size_t N, cudaStream_t s) {
  if (N == 0) return;
  if (dt == Dtype::F32) residual<float>(out, a, b, N, s);
  else residual<bf16>(out, a, b, N, s);
}

}  // namespace kiln
