// The global gradient norm, clip_grad_norm_'s factor and AdamW on f32 master weights
// (src/reference/adamw.ts, PyTorch's torch.nn.utils.clip_grad_norm_ + torch.optim.AdamW).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace kiln {
namespace {

constexpr int kWarp = 32;

// ---- global_norm_squared: two passes, a fixed order for a given n (so the same bits on
// every run and every GPU): pass 1 gives each block a grid-strided share and writes one
// f32 partial per block; pass 2 sums the partials in double in one block.
constexpr int kNormThreads = 256;
constexpr int kNormMaxBlocks = 1024;  // 262K threads: enough to saturate HBM on an H100
// Each thread sums at least this many float4 before another block is worth launching.
constexpr size_t kNormVecsPerThread = 4;

int norm_blocks(size_t n) {
  const size_t per_block = (size_t)kNormThreads * kNormVecsPerThread * 4;
  return (int)std::max<size_t>(1, std::min<size_t>(kNormMaxBlocks, (n + per_block - 1) / per_block));
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Per-thread sums stay in f32: a thread adds at most a few hundred squares (n / 262K),
// so what f32 drops there is bounded by that thread's own largest term. The partials of
// different threads, where a large gradient would swamp millions of small ones if they
// were added in sequence, are combined as a tree (pass 1) and in double (pass 2).
__global__ void __launch_bounds__(kNormThreads) global_norm_partials_kernel(float* partials, const float* grads, size_t n) {
  __shared__ float warp_sums[kNormThreads / kWarp];
  const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  float acc = 0.f;
  size_t scalar_from = 0;
  // The model's gradients start a cudaMalloc'd buffer, so the float4 path is the one that
  // runs; the branch is uniform over the grid.
  if (reinterpret_cast<uintptr_t>(grads) % 16 == 0) {
    const float4* g4 = reinterpret_cast<const float4*>(grads);
    const size_t n4 = n / 4;
    for (size_t i = tid; i < n4; i += stride) {
      const float4 g = g4[i];
      acc += g.x * g.x + g.y * g.y + g.z * g.z + g.w * g.w;
    }
    scalar_from = n4 * 4;
  }
  for (size_t i = scalar_from + tid; i < n; i += stride) acc += grads[i] * grads[i];

  acc = warp_sum(acc);
  if (threadIdx.x % kWarp == 0) warp_sums[threadIdx.x / kWarp] = acc;
  __syncthreads();
  if (threadIdx.x < kWarp) {
    float s = threadIdx.x < kNormThreads / kWarp ? warp_sums[threadIdx.x] : 0.f;
    s = warp_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
  }
}

// Double shuffles are not in the portable language, so the double tree goes through
// shared memory.
__global__ void __launch_bounds__(kNormThreads) global_norm_finish_kernel(float* normsq, const float* partials, int nparts) {
  __shared__ double sums[kNormThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += (double)partials[i];
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kNormThreads / 2; half > 0; half >>= 1) {
    if ((int)threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *normsq = (float)sums[0];
}

// ---- adamw_update
struct AdamwConsts {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float step_size;   // lr / (1 - beta1^t)
  float sqrt_bc2;    // sqrt(1 - beta2^t)
  float eps;
  float decay;       // 1 - lr * weight_decay, for segments that decay
  float grad_clip;   // <= 0: no clipping (normsq is then not read)
};

constexpr int kAdamThreads = 256;

// A grid-stride loop over the segments laid end to end: `i` is this thread's position
// relative to the current segment's start, and what overshoots one segment carries into
// the next (i -= size), so every thread gets an even share of the concatenation with no
// search, no division and no per-launch knowledge of the sizes (the table is on the
// device). Within a segment consecutive threads touch consecutive elements (coalesced).
__global__ void __launch_bounds__(kAdamThreads)
    adamw_kernel(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16, const ParamSegment* segments,
                 int nsegments, AdamwConsts c, const float* normsq) {
  // clip_grad_norm_: max_norm / (total_norm + 1e-6), capped at 1.
  const float gscale = c.grad_clip > 0.f ? fminf(1.f, c.grad_clip / (sqrtf(*normsq) + 1e-6f)) : 1.f;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (int k = 0; k < nsegments; k++) {
    const ParamSegment seg = segments[k];
    const float decay = seg.decay ? c.decay : 1.f;
    for (; i < seg.size; i += stride) {
      const size_t j = seg.offset + i;
      const float g = grads[j] * gscale;
      const float mj = c.beta1 * m[j] + c.one_minus_beta1 * g;
      const float vj = c.beta2 * v[j] + c.one_minus_beta2 * (g * g);
      m[j] = mj;
      v[j] = vj;
      // PyTorch's order: decoupled decay first, then the step with eps outside
      // sqrt(v_hat) = sqrt(v) / sqrt(1 - beta2^t).
      const float p = params[j] * decay - c.step_size * (mj / (sqrtf(vj) / c.sqrt_bc2 + c.eps));
      params[j] = p;
      if (params_bf16) params_bf16[j] = f32_to_bf16_bits(p);
    }
    i -= seg.size;
  }
}

// The update is elementwise, so its bits do not depend on the grid: size it to fill the
// device once (every thread then strides), whatever the parameter count.
int adamw_blocks() {
  static const int blocks = [] {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.multiProcessorCount < 1) {
      cudaGetLastError();  // not sticky; do not let it surface at the next sync
      return 128;
    }
    return prop.multiProcessorCount * std::max(1, prop.maxThreadsPerMultiProcessor / kAdamThreads);
  }();
  return blocks;
}

}  // namespace

size_t global_norm_scratch_floats(size_t n) { return (size_t)norm_blocks(n); }

void global_norm_squared(float* normsq, float* scratch, const float* grads, size_t n, cudaStream_t s) {
  const int blocks = norm_blocks(n);
  KILN_LAUNCH(global_norm_partials_kernel, dim3(blocks), dim3(kNormThreads), 0, s, scratch, grads, n);
  KILN_LAUNCH(global_norm_finish_kernel, dim3(1), dim3(kNormThreads), 0, s, normsq, (const float*)scratch, blocks);
}

void adamw_update(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16, const ParamSegment* segments, int nsegments,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int t, const float* normsq,
                  double grad_clip, cudaStream_t s) {
  if (nsegments <= 0) return;
  // The step's constants in double on the host, rounded once: 1 - beta^t loses digits
  // in f32 when t is small and beta2 is 0.999.
  AdamwConsts c;
  c.beta1 = (float)beta1;
  c.one_minus_beta1 = (float)(1.0 - (double)beta1);
  c.beta2 = (float)beta2;
  c.one_minus_beta2 = (float)(1.0 - (double)beta2);
  c.step_size = (float)((double)lr / (1.0 - std::pow((double)beta1, t)));
  c.sqrt_bc2 = (float)std::sqrt(1.0 - std::pow((double)beta2, t));
  c.eps = (float)eps;
  c.decay = (float)(1.0 - (double)lr * (double)weight_decay);
  c.grad_clip = (float)grad_clip;
  KILN_LAUNCH(adamw_kernel, dim3(adamw_blocks()), dim3(kAdamThreads), 0, s, params, grads, m, v, params_bf16, segments, nsegments, c,
              normsq);
}

}  // namespace kiln
