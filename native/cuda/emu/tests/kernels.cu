// Kernels that compile unchanged with nvcc (sm_80, sm_90; tests/cuda/emu.test.ts) and with
// g++ against the SIMT emulation (kiln_emu_tests runs them): between them they use every
// construct native/cuda/README.md allows, plus the intrinsics, so the two builds cannot
// drift apart without one of them failing to compile.
#include "kernels.h"

namespace kiln_emu_test {

__device__ __forceinline__ float mix(float f) {
  return tanhf(f) + sqrtf(fabsf(f)) * rsqrtf(1.0f + f * f) + __fdividef(__expf(f), 1.0f + expf(f)) - logf(1.0f + fabsf(f)) +
         __logf(2.0f) + powf(fabsf(f), 1.5f);
}

// Everything from the README's device-language list. Per element: y = mix(x), stored as
// float4 where four fit; per block: warp reductions by each shuffle kind, vote counts and
// integer atomics, gathered through shared memory (static and dynamic).
template <class T, int VEC>
__global__ void __launch_bounds__(256) constructs_kernel(const T* __restrict__ x, float* __restrict__ y, ConstructsBlock* __restrict__ blocks,
                                                         unsigned int* __restrict__ totals, int n) {
  KILN_DYNAMIC_SHARED(float2, warp_stats);  // per warp: {sum, max}
  __shared__ int4 warp_votes[32];            // per warp: {scan mismatch, lanes voting, any, all}
  const int lane = threadIdx.x % warpSize, warp = threadIdx.x / warpSize;
  const int nwarps = (blockDim.x * blockDim.y * blockDim.z + warpSize - 1) / warpSize;
  const dim3 shape(blockDim.x, gridDim.x);
  float sum = 0.0f, mx = -INFINITY;
  int positives = 0;
  for (int base = (blockIdx.x * shape.x + threadIdx.x) * VEC; base < n; base += shape.y * shape.x * VEC) {
    float g[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      const int i = min(base + v, n - 1);
      const float f = kiln::to_float(x[i]);
      g[v] = mix(f);
      if (base + v < n) {
        sum += g[v];
        mx = fmaxf(mx, g[v]);
        positives += f > 0.0f;
      }
    }
    if constexpr (VEC == 4) {
      if (base + 3 < n) {
        *reinterpret_cast<float4*>(y + base) = make_float4(g[0], g[1], g[2], g[3]);
        continue;
      }
    }
    for (int v = 0; v < VEC && base + v < n; ++v) y[base + v] = g[v];
  }
  // Butterfly sum: every lane ends with the warp's total. Max down to lane 0, then broadcast.
  for (int o = warpSize / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  for (int o = warpSize / 2; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_down_sync(0xffffffffu, mx, o));
  mx = __shfl_sync(0xffffffffu, mx, 0);
  // Positives: tree sum to lane 0 (unsigned) against an inclusive scan (int), whose last lane
  // holds the same total.
  unsigned int total = (unsigned int)positives;
  for (int o = warpSize / 2; o > 0; o >>= 1) total += __shfl_down_sync(0xffffffffu, total, o);
  int scan = positives;
  for (int o = 1; o < warpSize; o <<= 1) {
    const int other = __shfl_up_sync(0xffffffffu, scan, o);
    if (lane >= o) scan += other;
  }
  const int scan_total = __shfl_sync(0xffffffffu, scan, warpSize - 1);
  const unsigned int voters = __ballot_sync(0xffffffffu, positives > 0);
  const int any = __any_sync(0xffffffffu, positives > 0), all = __all_sync(0xffffffffu, positives > 0);
  __syncwarp();
  if (lane == 0) {
    warp_stats[warp] = make_float2(sum, mx);
    warp_votes[warp] = make_int4(scan_total != (int)total, __popc(voters), any, all);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float2 stats = make_float2(0.0f, -INFINITY);
    int4 votes = make_int4(0, 0, 0, 0);
    for (int w = 0; w < nwarps; ++w) {
      stats.x += warp_stats[w].x;
      stats.y = fmaxf(stats.y, warp_stats[w].y);
      votes.x += warp_votes[w].x;
      votes.y += warp_votes[w].y;
      votes.z += warp_votes[w].z;
      votes.w += warp_votes[w].w;
    }
    blocks[blockIdx.x].stats = stats;
    blocks[blockIdx.x].votes = votes;
    blocks[blockIdx.x].where = make_uint2(blockIdx.x, blockDim.x);
    atomicAdd(&totals[0], 1u);
    atomicAdd(reinterpret_cast<int*>(&totals[1]), votes.y);
  }
}

__host__ __device__ inline int round_up(int v, int m) { return (v + m - 1) / m * m; }

void constructs(const float* x_host, float* y_host, ConstructsBlock* blocks_host, unsigned int* totals_host, int n, int grid, int block) {
  float *x = nullptr, *y = nullptr;
  ConstructsBlock* blocks = nullptr;
  unsigned int* totals = nullptr;
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  cudaMalloc(&x, sizeof(float) * n);
  cudaMalloc(&y, sizeof(float) * n);
  cudaMalloc(&blocks, sizeof(ConstructsBlock) * grid);
  cudaMalloc(&totals, sizeof(unsigned int) * 2);
  cudaMemcpyAsync(x, x_host, sizeof(float) * n, cudaMemcpyHostToDevice, stream);
  cudaMemsetAsync(totals, 0, sizeof(unsigned int) * 2, stream);
  const size_t smem = sizeof(float2) * (size_t)round_up(block, 32) / 32;
  cudaFuncSetAttribute(constructs_kernel<float, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  KILN_LAUNCH((constructs_kernel<float, 4>), grid, block, smem, stream, x, y, blocks, totals, n);
  cudaMemcpy(y_host, y, sizeof(float) * n, cudaMemcpyDeviceToHost);
  cudaMemcpy(blocks_host, blocks, sizeof(ConstructsBlock) * grid, cudaMemcpyDeviceToHost);
  cudaMemcpy(totals_host, totals, sizeof(unsigned int) * 2, cudaMemcpyDeviceToHost);
  cudaStreamSynchronize(stream);
  cudaStreamDestroy(stream);
  cudaFree(x);
  cudaFree(y);
  cudaFree(blocks);
  cudaFree(totals);
}

// C (32x16, f32) = A (32x32) * B (32x16), bf16 row-major, by the tensor-core path: cp.async
// into shared memory, ldmatrix (plain for A, .trans for B) and mma.sync m16n8k16. Two warps,
// each owning 16 rows and both 8-column tiles.
__global__ void __launch_bounds__(64) tile_gemm_kernel(const uint16_t* __restrict__ A, const uint16_t* __restrict__ B, float* __restrict__ C) {
  constexpr int M = 32, N = 16, K = 32;
  __shared__ __align__(16) uint16_t As[M * K];
  __shared__ __align__(16) uint16_t Bs[K * N];
  // 16-byte chunks: A has M*K/8 of them, B K*N/8; 64 threads take them in turn.
  for (int c = threadIdx.x; c < M * K / 8; c += blockDim.x) kiln::cp_async16(As + c * 8, A + c * 8);
  for (int c = threadIdx.x; c < K * N / 8; c += blockDim.x) kiln::cp_async16(Bs + c * 8, B + c * 8);
  kiln::cp_async_commit();
  kiln::cp_async_wait<0>();
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, t = lane % 4;
  float acc[2][4] = {};
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    // A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
    // of this warp's 16 rows: a[0..3] in the order mma expects. Lane l gives matrix l/8's row l%8.
    uint32_t a[4];
    const int arow = warp * 16 + (lane % 8) + 8 * ((lane / 8) % 2), acol = k0 + 8 * (lane / 16);
    kiln::ldmatrix_x4(a, As + arow * K + acol);
    // B (k-major in memory): matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
    // (k 8-15, n 8-15), transposed so each lane holds the column fragment.
    uint32_t b[4];
    const int brow = k0 + (lane % 8) + 8 * ((lane / 8) % 2), bcol = 8 * (lane / 16);
    kiln::ldmatrix_x4_trans(b, Bs + brow * N + bcol);
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const uint32_t bt[2] = {b[2 * nt], b[2 * nt + 1]};
      kiln::mma_m16n8k16_bf16(acc[nt], a, bt, acc[nt]);
    }
  }
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int row = warp * 16 + g, col = nt * 8 + 2 * t;
    C[row * N + col] = acc[nt][0];
    C[row * N + col + 1] = acc[nt][1];
    C[(row + 8) * N + col] = acc[nt][2];
    C[(row + 8) * N + col + 1] = acc[nt][3];
  }
}

void tile_gemm(const uint16_t* a_host, const uint16_t* b_host, float* c_host) {
  uint16_t *a = nullptr, *b = nullptr;
  float* c = nullptr;
  cudaMalloc(&a, 32 * 32 * 2);
  cudaMalloc(&b, 32 * 16 * 2);
  cudaMalloc(&c, 32 * 16 * 4);
  cudaMemcpy(a, a_host, 32 * 32 * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(b, b_host, 32 * 16 * 2, cudaMemcpyHostToDevice);
  KILN_LAUNCH(tile_gemm_kernel, 1, 64, 0, 0, a, b, c);
  cudaMemcpy(c_host, c, 32 * 16 * 4, cudaMemcpyDeviceToHost);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
}

// The host runtime calls of the README that constructs() does not make.
HostInfo host_runtime() {
  HostInfo info{};
  info.count = -1;
  cudaGetDeviceCount(&info.count);
  cudaSetDevice(0);
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    snprintf(info.name, sizeof info.name, "%s", prop.name);
    info.major = prop.major;
  }
  cudaMemGetInfo(&info.free_bytes, &info.total_bytes);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, 0);
  void* p = nullptr;
  cudaMalloc(&p, 1024);
  cudaMemset(p, 0, 1024);
  float* host = nullptr;
  cudaMallocHost(&host, 1024);
  cudaMemcpy(host, p, 1024, cudaMemcpyDeviceToHost);
  info.zeros = host[0] == 0.0f && host[255] == 0.0f;
  cudaFreeHost(host);
  cudaFree(p);
  cudaEventRecord(stop, 0);
  cudaEventSynchronize(stop);
  info.elapsed_ms = -1.0f;
  cudaEventElapsedTime(&info.elapsed_ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaDeviceSynchronize();
  info.peek = cudaPeekAtLastError();
  info.last = cudaGetLastError();
  snprintf(info.success_text, sizeof info.success_text, "%s", cudaGetErrorString(cudaSuccess));
  return info;
}

}  // namespace kiln_emu_test
