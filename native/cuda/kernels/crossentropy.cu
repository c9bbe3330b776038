// Softmax + cross-entropy over the tied head, fused with its backward
// (src/reference/crossentropy.ts; the idea is llm.c's fused_classifier).
//
// One block per row. The row is read twice: once for its max and sum of exponentials
// (an online softmax, so one read suffices), and once more to overwrite it in place with
// the gradient. The probabilities exist only in registers: at V = 50304 and B*T = 16K a
// stored (N, V) probability tensor would cost 1.6 GB of traffic per step for nothing.
#include <algorithm>
#include <cstdint>

#include "kernels.h"

namespace kiln {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 1024;

// VEC consecutive elements loaded or stored as one access (16 bytes when VEC > 1, so
// nvcc emits ld/st.global.v4). A struct of T, so the emulation reads T through T.
template <class T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// blockDim.x is a multiple of 32. Every warp reduces the per-warp results itself, so all
// threads leave with the same bits (xor butterflies are order-symmetric) and no broadcast
// barrier is needed; each reduction has its own `partial` so none is reused.
__device__ __forceinline__ float block_max(float x, float* partial) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  x = warp_max(x);
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  return warp_max(lane < (int)(blockDim.x / kWarp) ? partial[lane] : -INFINITY);
}

__device__ __forceinline__ float block_sum(float x, float* partial) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  x = warp_sum(x);
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  return warp_sum(lane < (int)(blockDim.x / kWarp) ? partial[lane] : 0.f);
}

// VEC > 1 requires Vp % VEC == 0 and a 16-byte aligned row base (the launcher checks), so
// every vector below Vp is in bounds and aligned; the one straddling V is masked.
template <class T, int VEC>
__global__ void __launch_bounds__(kMaxThreads)
    crossentropy_kernel(T* logits, float* losses, const int* targets, int V, int Vp, float scale, bool write_dlogits) {
  __shared__ float partial_max[kMaxThreads / kWarp];
  __shared__ float partial_sum[kMaxThreads / kWarp];
  // Last row first: the head GEMM just wrote the last rows, so they are likeliest in L2.
  const int row = gridDim.x - 1 - blockIdx.x;
  T* x = logits + (size_t)row * Vp;
  Pack<T, VEC>* xv = reinterpret_cast<Pack<T, VEC>*>(x);
  const int target = targets[row];
  // Read before the first barrier below: after the last one, other threads overwrite it.
  const float target_logit = threadIdx.x == 0 ? to_float(x[target]) : 0.f;

  // Online softmax: rescale the running sum only when a vector raises the running max,
  // one expf per element plus one per rise. Columns >= V are -inf, whatever the padding
  // holds (NaN included): a select, never arithmetic on them.
  const int nvec = (V + VEC - 1) / VEC;
  float run_max = -INFINITY, run_sum = 0.f;
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
    const Pack<T, VEC> p = xv[i];
    float f[VEC];
    float pmax = -INFINITY;
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      f[k] = i * VEC + k < V ? to_float(p.v[k]) : -INFINITY;
      pmax = fmaxf(pmax, f[k]);
    }
    // Every vector holds a column < V, so pmax is finite and so is run_max from here on;
    // the first time, expf(-inf) scales the empty sum to 0.
    if (pmax > run_max) {
      run_sum *= expf(run_max - pmax);
      run_max = pmax;
    }
#pragma unroll
    for (int k = 0; k < VEC; k++) run_sum += expf(f[k] - run_max);
  }
  const float row_max = block_max(run_max, partial_max);
  // A thread that saw no column has max -inf and sum 0: expf(-inf) = 0 keeps it 0.
  const float row_sum = block_sum(run_sum * expf(run_max - row_max), partial_sum);

  // As the reference: log(sum) - (logit - max), finite even where the target's
  // probability underflows.
  if (threadIdx.x == 0) losses[row] = logf(row_sum) - (target_logit - row_max);
  if (!write_dlogits) return;

  // Each thread rewrites only the vectors it read above, plus pure padding.
  const float inv_sum = 1.f / row_sum;
  const int nvec_padded = Vp / VEC;
  for (int i = threadIdx.x; i < nvec_padded; i += blockDim.x) {
    Pack<T, VEC> p{};
    if (i < nvec) p = xv[i];
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      const int col = i * VEC + k;
      float g = 0.f;
      if (col < V) {
        const float prob = expf(to_float(p.v[k]) - row_max) * inv_sum;
        g = (prob - (col == target ? 1.f : 0.f)) * scale;
      }
      p.v[k] = from_float<T>(g);
    }
    xv[i] = p;
  }
}

template <class T, int VEC>
void launch(T* logits, float* losses, const int* targets, int N, int V, int Vp, float scale, bool write_dlogits, cudaStream_t s) {
  const int nvec = Vp / VEC;
  // One thread per vector up to 1024: a GPT-2 row (50304 bf16, 6288 vectors) takes ~6
  // per thread; a tiny vocabulary does not launch idle warps.
  const int threads = std::min(kMaxThreads, (nvec + kWarp - 1) / kWarp * kWarp);
  KILN_LAUNCH((crossentropy_kernel<T, VEC>), dim3(N), dim3(threads), 0, s, logits, losses, targets, V, Vp, scale, write_dlogits);
}

template <class T>
void dispatch(void* logits, float* losses, const int* targets, int N, int V, int Vp, float scale, bool write_dlogits, cudaStream_t s) {
  constexpr int VEC = 16 / sizeof(T);
  T* x = static_cast<T*>(logits);
  if (Vp % VEC == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0)
    launch<T, VEC>(x, losses, targets, N, V, Vp, scale, write_dlogits, s);
  else
    launch<T, 1>(x, losses, targets, N, V, Vp, scale, write_dlogits, s);
}

}  // namespace

void crossentropy_forward_backward(Dtype dt, void* logits, float* losses, const int* targets, int N, int V, int Vp, float dloss_scale,
                                   bool write_dlogits, cudaStream_t s) {
  if (N <= 0 || V <= 0) return;
  if (dt == Dtype::F32)
    dispatch<float>(logits, losses, targets, N, V, Vp, dloss_scale, write_dlogits, s);
  else
    dispatch<bf16>(logits, losses, targets, N, V, Vp, dloss_scale, write_dlogits, s);
}

}  // namespace kiln
