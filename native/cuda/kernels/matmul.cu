// Matrix products C = op(A) @ op(B) (+ bias) (+ C), row-major, for every linear layer of
// the model (src/reference/matmul.ts), and the bias gradient. Three implementations:
//
// - Simt: a register-tiled f32 kernel. The parity path (f32 mode must follow the CPU
//   reference step for step, so no tensor cores, no TF32) and the fallback for any shape,
//   stride or alignment the tensor-core kernel cannot take.
// - TensorCore: bf16 mma.sync.m16n8k16 with f32 accumulation, fed by ldmatrix from a
//   swizzled shared layout that a 4-stage cp.async pipeline fills. Ours, for toolkits
//   without cuBLASLt (CI's), and the one whose index math the emulation checks.
// - CublasLt (matmul_cublaslt.cu): where the toolkit has it.
//
// Layout names follow BLAS with row-major storage: NN is out = inp @ W, NT is
// dinp = dout @ W^T (and logits = x @ wte^T), TN is dW += inp^T @ dout.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels.h"

namespace kiln {

#if defined(KILN_HAVE_CUBLASLT) && !KILN_EMU
// matmul_cublaslt.cu
void matmul_cublaslt(const Gemm& g, cudaStream_t s);
#endif

namespace {

// ---------------------------------------------------------------------------------------
// Epilogue, shared by both of our kernels: C[row, col] = acc (+ bias[col]) (+ C[row, col]).
// The value is rounded to C's dtype once, after the f32 sum, as the reference rounds.
template <class TC>
__device__ __forceinline__ float epilogue_value(float acc, const float* bias, const TC* C, size_t idx, int col, bool accumulate) {
  if (bias) acc += bias[col];
  if (accumulate) acc += to_float(C[idx]);
  return acc;
}

// ---------------------------------------------------------------------------------------
// Simt: 64x64 block tile, 16-deep k tile, 256 threads each owning a 4x4 register tile.
//
// Thread (tx, ty) of the 16x16 grid owns rows ty + 16i and columns tx + 16j (strided, not
// a contiguous 4x4): in the inner loop a warp (two ty, sixteen tx) then reads As[k][.]
// as two broadcast addresses and Bs[k][.] as sixteen consecutive words, both free of bank
// conflicts, and the epilogue's stores are coalesced along tx. Shared tiles are k-major;
// the global loads walk the operand's contiguous dimension (which is k or m/n depending on
// the transpose) so they coalesce, and the row pitch of 66 floats keeps the k-fastest
// transposing stores conflict-free (bank = 2k + m over a warp's 16 k x 2 m).
// Double-buffered in shared memory with the next tile staged in registers: one barrier per
// k tile.
constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256, kSimtPitch = 66;
constexpr int kSimtPerThread = kSimtBM * kSimtBK / kSimtThreads;  // 4 elements of A and of B per tile

struct SimtParams {
  const void* A;
  const void* B;
  void* C;
  const float* bias;
  int M, N, K, lda, ldb, ldc;
  bool accumulate;
};

template <class TAB, bool TA, bool TB>
__device__ __forceinline__ void simt_load_tile(float (&ra)[kSimtPerThread], float (&rb)[kSimtPerThread], const SimtParams& p, int m0,
                                               int n0, int k0, int tid) {
  const TAB* A = static_cast<const TAB*>(p.A);
  const TAB* B = static_cast<const TAB*>(p.B);
#pragma unroll
  for (int r = 0; r < kSimtPerThread; r++) {
    const int idx = tid + r * kSimtThreads;
    // A as stored: (M,K) k-contiguous, or (K,M) m-contiguous when transposed.
    const int am = TA ? idx % kSimtBM : idx / kSimtBK;
    const int ak = TA ? idx / kSimtBM : idx % kSimtBK;
    const int gm = m0 + am, gk = k0 + ak;
    ra[r] = (gm < p.M && gk < p.K) ? to_float(TA ? A[(size_t)gk * p.lda + gm] : A[(size_t)gm * p.lda + gk]) : 0.0f;
    // B as stored: (K,N) n-contiguous, or (N,K) k-contiguous when transposed.
    const int bn = TB ? idx / kSimtBK : idx % kSimtBN;
    const int bk = TB ? idx % kSimtBK : idx / kSimtBN;
    const int gn = n0 + bn, gk2 = k0 + bk;
    rb[r] = (gn < p.N && gk2 < p.K) ? to_float(TB ? B[(size_t)gn * p.ldb + gk2] : B[(size_t)gk2 * p.ldb + gn]) : 0.0f;
  }
}

template <bool TA, bool TB>
__device__ __forceinline__ void simt_store_tile(float (*As)[kSimtPitch], float (*Bs)[kSimtPitch], const float (&ra)[kSimtPerThread],
                                                const float (&rb)[kSimtPerThread], int tid) {
#pragma unroll
  for (int r = 0; r < kSimtPerThread; r++) {
    const int idx = tid + r * kSimtThreads;
    As[TA ? idx / kSimtBM : idx % kSimtBK][TA ? idx % kSimtBM : idx / kSimtBK] = ra[r];
    Bs[TB ? idx % kSimtBK : idx / kSimtBN][TB ? idx / kSimtBK : idx % kSimtBN] = rb[r];
  }
}

template <class TAB, class TC, bool TA, bool TB>
__global__ void __launch_bounds__(kSimtThreads) matmul_simt_kernel(SimtParams p) {
  __shared__ float As[2][kSimtBK][kSimtPitch];
  __shared__ float Bs[2][kSimtBK][kSimtPitch];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * kSimtBM, n0 = blockIdx.x * kSimtBN;

  float acc[4][4] = {};
  float ra[kSimtPerThread], rb[kSimtPerThread];
  const int ktiles = (p.K + kSimtBK - 1) / kSimtBK;
  if (ktiles > 0) {
    simt_load_tile<TAB, TA, TB>(ra, rb, p, m0, n0, 0, tid);
    simt_store_tile<TA, TB>(As[0], Bs[0], ra, rb, tid);
  }
  __syncthreads();
  for (int t = 0; t < ktiles; t++) {
    const int buf = t & 1;
    // The next tile's global loads are in flight while this tile computes.
    if (t + 1 < ktiles) simt_load_tile<TAB, TA, TB>(ra, rb, p, m0, n0, (t + 1) * kSimtBK, tid);
#pragma unroll
    for (int k = 0; k < kSimtBK; k++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = As[buf][k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; j++) b[j] = Bs[buf][k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    // The other buffer was last read in iteration t-1, which every thread finished before
    // the barrier that ended it; this barrier publishes the new tile before t+1 reads it.
    if (t + 1 < ktiles) simt_store_tile<TA, TB>(As[buf ^ 1], Bs[buf ^ 1], ra, rb, tid);
    __syncthreads();
  }

  TC* C = static_cast<TC*>(p.C);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int row = m0 + ty + 16 * i;
    if (row >= p.M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int col = n0 + tx + 16 * j;
      if (col >= p.N) continue;
      const size_t idx = (size_t)row * p.ldc + col;
      C[idx] = from_float<TC>(epilogue_value(acc[i][j], p.bias, C, idx, col, p.accumulate));
    }
  }
}

template <class TAB, class TC>
void launch_simt(const Gemm& g, cudaStream_t s) {
  const SimtParams p{g.A, g.B, g.C, g.bias, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, g.accumulate};
  const dim3 grid((g.N + kSimtBN - 1) / kSimtBN, (g.M + kSimtBM - 1) / kSimtBM);
  if (grid.y > 65535) throw std::invalid_argument("matmul: M " + std::to_string(g.M) + " exceeds the Simt kernel's grid (65535 x 64 rows)");
  // One launch site per kernel template, so KILN_CUDA_NOOP="matmul_simt_kernel<TAB,TC,TA,TB>"
  // silences every instantiation.
  auto launch = [&](auto ta, auto tb) {
    constexpr bool TA = decltype(ta)::value, TB = decltype(tb)::value;
    KILN_LAUNCH((matmul_simt_kernel<TAB, TC, TA, TB>), grid, dim3(kSimtThreads), 0, s, p);
  };
  using T = std::true_type;
  using F = std::false_type;
  if (g.transA) {
    if (g.transB) launch(T{}, T{}); else launch(T{}, F{});
  } else {
    if (g.transB) launch(F{}, T{}); else launch(F{}, F{});
  }
}

void matmul_simt(const Gemm& g, cudaStream_t s) {
  if (g.ab == Dtype::F32) {
    if (g.c == Dtype::F32) launch_simt<float, float>(g, s); else launch_simt<float, bf16>(g, s);
  } else {
    if (g.c == Dtype::F32) launch_simt<bf16, float>(g, s); else launch_simt<bf16, bf16>(g, s);
  }
}

// ---------------------------------------------------------------------------------------
// TensorCore: bf16 x bf16 -> f32 on mma.sync.m16n8k16.
//
// Block tile 128x128x32, 8 warps as 2 (M) x 4 (N), each warp 64x32: 4 m16 x 4 n8 mma
// tiles, 64 f32 accumulators per thread. Per 16-deep k step a warp issues 4 ldmatrix.x4
// for A, 2 for B and 16 mma. Four pipeline stages of 8 KiB (A) + 8 KiB (B): 64 KiB of
// dynamic shared memory per block. __launch_bounds__(256, 2) caps registers at 128 (ptxas
// uses 124-128, no spills), so two blocks share an SM: 128 KiB of sm_90's 228 KiB of shared
// memory and all of its 64K registers; one block's prologue and epilogue then overlap the
// other's main loop.
//
// Shared layouts, one per operand orientation, both in 16-byte chunks (8 bf16):
// - k-contiguous (A as stored (M,K); B as stored (N,K)): rows of BK = 32 elements = 4
//   chunks (64 bytes). ldmatrix reads one chunk from each of 8 consecutive rows; with a
//   64-byte pitch rows r and r+2 share banks, so chunk c of row r lives at c ^ ((r>>1)&3):
//   the 8 rows then cover (r&1, (r>>1)&3), all 8 16-byte bank groups of a 128-byte line.
// - mn-contiguous (A as stored (K,M); B as stored (K,N)): rows of 128 elements = 16 chunks
//   (256 bytes, every row on the same banks), read with ldmatrix.trans along 8 k rows, so
//   chunk c of row r lives at c ^ (r & 7).
// cp.async writes the same swizzled addresses; 8 consecutive threads write 8 distinct
// chunk slots, so the stores are conflict-free too.
//
// Requirements (checked by tc_supported, else Simt): K, lda, ldb multiples of 8 and A, B
// 16-byte aligned, so every 16-byte chunk along k (or along m/n for the transposed
// orientation) is aligned. Edges are zero-filled by cp.async's src-size operand: whole
// chunks past K or past M/N rows, and the part of a chunk past M or N in the mn-contiguous
// orientation (whose tail elements exist only up to the matrix's last column).
constexpr int kTcBM = 128, kTcBN = 128, kTcBK = 32, kTcStages = 4, kTcThreads = 256;
constexpr int kTcWarpM = 64, kTcWarpN = 32;  // 2 x 4 warps
constexpr int kTcMi = kTcWarpM / 16, kTcNi = kTcWarpN / 8;
constexpr int kTcTileElems = kTcBM * kTcBK;  // per operand per stage (BM == BN)
constexpr int kTcStageElems = 2 * kTcTileElems;
constexpr size_t kTcSmemBytes = (size_t)kTcStages * kTcStageElems * sizeof(bf16_bits);  // 64 KiB
static_assert(kTcBM == kTcBN, "one tile size for both operands keeps the loaders shared");
static_assert(kTcTileElems / 8 == 2 * kTcThreads, "each thread copies two 16-byte chunks per operand per stage");

struct TcParams {
  const bf16_bits* A;
  const bf16_bits* B;
  void* C;
  const float* bias;
  int M, N, K, lda, ldb, ldc;
  bool accumulate;
  bool pair_store;  // ldc even and C aligned to two elements: epilogue writes pairs
};

// Element offset of (row, 16-byte chunk) in a k-contiguous tile (rows x 4 chunks).
__device__ __forceinline__ int kcontig_off(int row, int chunk) { return (row * 4 + (chunk ^ ((row >> 1) & 3))) * 8; }
// Element offset of (row, 16-byte chunk) in an mn-contiguous tile (32 k rows x 16 chunks).
__device__ __forceinline__ int mncontig_off(int row, int chunk) { return (row * 16 + (chunk ^ (row & 7))) * 8; }

// One operand's stage: rows `rows` (M or N) by K, starting at (r0, k0), into the tile.
// kmajor: the operand is stored with k contiguous (row r, column k at src[r*ld + k]);
// otherwise stored (K, rows) with rows contiguous (src[k*ld + r]).
template <bool KMajor>
__device__ __forceinline__ void tc_load_operand(bf16_bits* tile, const bf16_bits* src, int ld, int rows, int K, int r0, int k0,
                                                int tid) {
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int id = tid + i * kTcThreads;
    int srow, chunk, gr, gk, valid;
    if (KMajor) {
      srow = id / 4, chunk = id % 4;
      gr = r0 + srow, gk = k0 + chunk * 8;
      valid = (gr < rows && gk < K) ? 8 : 0;  // K % 8 == 0: a chunk is all in or all out
    } else {
      srow = id / 16, chunk = id % 16;
      gk = k0 + srow, gr = r0 + chunk * 8;
      valid = gk < K ? max(0, min(8, rows - gr)) : 0;
    }
    bf16_bits* dst = tile + (KMajor ? kcontig_off(srow, chunk) : mncontig_off(srow, chunk));
    // Out-of-range chunks still name a valid address (the matrix's first element): a GPU
    // reads nothing with src-size 0, but the address must not be computed out of bounds.
    const bf16_bits* g = valid ? src + (KMajor ? (size_t)gr * ld + gk : (size_t)gk * ld + gr) : src;
    cp_async16(dst, g, valid * 2);
  }
}

template <bool TA, bool TB>
__device__ __forceinline__ void tc_load_stage(bf16_bits* stage, const TcParams& p, int m0, int n0, int k0, int tid) {
  tc_load_operand<!TA>(stage, p.A, p.lda, p.M, p.K, m0, k0, tid);
  tc_load_operand<TB>(stage + kTcTileElems, p.B, p.ldb, p.N, p.K, n0, k0, tid);
}

template <class TC>
__device__ __forceinline__ void tc_store_pair(TC* C, size_t idx, float v0, float v1, bool both, bool pair) {
  if (both && pair) {
    if constexpr (sizeof(TC) == 4) {
      *reinterpret_cast<float2*>(C + idx) = make_float2(v0, v1);
    } else {
      struct alignas(4) Bf16x2 { TC x, y; };
      *reinterpret_cast<Bf16x2*>(C + idx) = Bf16x2{from_float<TC>(v0), from_float<TC>(v1)};
    }
  } else {
    C[idx] = from_float<TC>(v0);
    if (both) C[idx + 1] = from_float<TC>(v1);
  }
}

template <bool TA, bool TB, class TC>
__global__ void __launch_bounds__(kTcThreads, 2) matmul_tc_kernel(TcParams p) {
  KILN_DYNAMIC_SHARED(bf16_bits, smem);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp / 4, wn = warp % 4;

  // Grouped raster: 8 consecutive block rows sweep the columns together, so the A panels of
  // the blocks resident at once stay in L2 while B panels stream (Triton's GROUP_M).
  const int tiles_m = (p.M + kTcBM - 1) / kTcBM, tiles_n = (p.N + kTcBN - 1) / kTcBN;
  constexpr int kGroup = 8;
  const int pid = blockIdx.x, per_group = kGroup * tiles_n;
  const int first_m = (pid / per_group) * kGroup;
  const int group_rows = min(tiles_m - first_m, kGroup);
  const int m0 = (first_m + (pid % per_group) % group_rows) * kTcBM;
  const int n0 = ((pid % per_group) / group_rows) * kTcBN;

  float acc[kTcMi][kTcNi][4] = {};
  const int ktiles = (p.K + kTcBK - 1) / kTcBK;

  // Prologue: stages 0..S-2 in flight. Every thread commits exactly one group per stage,
  // empty or not, so cp_async_wait<S-2> below always means "tile kt has landed".
#pragma unroll
  for (int s = 0; s < kTcStages - 1; s++) {
    if (s < ktiles) tc_load_stage<TA, TB>(smem + s * kTcStageElems, p, m0, n0, s * kTcBK, tid);
    cp_async_commit();
  }

  for (int kt = 0; kt < ktiles; kt++) {
    cp_async_wait<kTcStages - 2>();
    // Publishes tile kt's copies (each thread waited only for its own) and proves every warp
    // finished computing tile kt-1, whose stage the prefetch below overwrites.
    __syncthreads();
    {
      const int next = kt + kTcStages - 1;
      if (next < ktiles) tc_load_stage<TA, TB>(smem + (next % kTcStages) * kTcStageElems, p, m0, n0, next * kTcBK, tid);
      cp_async_commit();
    }

    const bf16_bits* As = smem + (kt % kTcStages) * kTcStageElems;
    const bf16_bits* Bs = As + kTcTileElems;
#pragma unroll
    for (int kk = 0; kk < kTcBK; kk += 16) {
      uint32_t a[kTcMi][4], b[kTcNi][2];
      // A fragments (m16 x k16, row-major): matrices 0..3 = (m 0-7, k 0-7), (m 8-15, k 0-7),
      // (m 0-7, k 8-15), (m 8-15, k 8-15), the order of mma's a0..a3. Lane l addresses row
      // l%8 of matrix l/8.
#pragma unroll
      for (int mi = 0; mi < kTcMi; mi++) {
        const int mb = wm * kTcWarpM + mi * 16;
        if (!TA) {
          const int row = mb + (lane & 15), chunk = kk / 8 + (lane >> 4);
          ldmatrix_x4(a[mi], As + kcontig_off(row, chunk));
        } else {
          // Stored k-major: the same four matrices, each an (8 k x 8 m) block transposed.
          const int q = lane >> 3;
          const int krow = kk + (lane & 7) + (q >> 1) * 8, chunk = mb / 8 + (q & 1);
          ldmatrix_x4_trans(a[mi], As + mncontig_off(krow, chunk));
        }
      }
      // B fragments (k16 x n8, "col"): b0 = k 0-7, b1 = k 8-15 of one n8 tile; one x4 loads
      // two n8 tiles: (n 0-7: b0, b1), (n 8-15: b0, b1).
#pragma unroll
      for (int nj = 0; nj < kTcNi / 2; nj++) {
        const int nb = wn * kTcWarpN + nj * 16;
        const int q = lane >> 3;
        uint32_t r[4];
        if (TB) {
          // Stored (N,K): rows are n, plain ldmatrix gives each thread two consecutive k.
          const int row = nb + (lane & 7) + (q >> 1) * 8, chunk = kk / 8 + (q & 1);
          ldmatrix_x4(r, Bs + kcontig_off(row, chunk));
        } else {
          // Stored (K,N): rows are k, the transposing load gives each thread two consecutive k.
          const int krow = kk + (lane & 7) + (q & 1) * 8, chunk = nb / 8 + (q >> 1);
          ldmatrix_x4_trans(r, Bs + mncontig_off(krow, chunk));
        }
        b[2 * nj][0] = r[0], b[2 * nj][1] = r[1];
        b[2 * nj + 1][0] = r[2], b[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < kTcMi; mi++)
#pragma unroll
        for (int ni = 0; ni < kTcNi; ni++) mma_m16n8k16_bf16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
    }
  }
  // Drain the (empty) trailing groups so no copy is outstanding when the block retires.
  cp_async_wait<0>();

  // Epilogue straight from the accumulators: thread (g = lane/4, t = lane%4) holds rows g
  // and g+8, columns 2t and 2t+1 of each m16n8 tile.
  TC* C = static_cast<TC*>(p.C);
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int ni = 0; ni < kTcNi; ni++) {
    const int col = n0 + wn * kTcWarpN + ni * 8 + 2 * t;
    if (col >= p.N) continue;
    const bool both = col + 1 < p.N;
#pragma unroll
    for (int mi = 0; mi < kTcMi; mi++) {
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int row = m0 + wm * kTcWarpM + mi * 16 + g + 8 * h;
        if (row >= p.M) continue;
        const size_t idx = (size_t)row * p.ldc + col;
        const float v0 = epilogue_value(acc[mi][ni][2 * h], p.bias, C, idx, col, p.accumulate);
        const float v1 = both ? epilogue_value(acc[mi][ni][2 * h + 1], p.bias, C, idx + 1, col + 1, p.accumulate) : 0.0f;
        tc_store_pair(C, idx, v0, v1, both, p.pair_store);
      }
    }
  }
}

bool aligned_to(const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

bool tc_supported(const Gemm& g) {
  return g.ab == Dtype::BF16 && g.K % 8 == 0 && g.lda % 8 == 0 && g.ldb % 8 == 0 && aligned_to(g.A, 16) && aligned_to(g.B, 16);
}

template <bool TA, bool TB, class TC>
void launch_tc_typed(const TcParams& p, cudaStream_t s) {
  // Above 48 KiB of dynamic shared memory a kernel must opt in, once per instantiation.
  static const cudaError_t opted = cudaFuncSetAttribute(matmul_tc_kernel<TA, TB, TC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                        (int)kTcSmemBytes);
  if (opted != cudaSuccess)
    throw std::runtime_error(std::string("matmul: cannot give the tensor-core kernel 64 KiB of shared memory: ") +
                             cudaGetErrorString(opted));
  const int tiles = ((p.M + kTcBM - 1) / kTcBM) * ((p.N + kTcBN - 1) / kTcBN);
  KILN_LAUNCH((matmul_tc_kernel<TA, TB, TC>), dim3(tiles), dim3(kTcThreads), kTcSmemBytes, s, p);
}

template <class TC>
void launch_tc(const Gemm& g, cudaStream_t s) {
  const TcParams p{static_cast<const bf16_bits*>(g.A), static_cast<const bf16_bits*>(g.B), g.C, g.bias, g.M, g.N, g.K, g.lda, g.ldb,
                   g.ldc, g.accumulate, g.ldc % 2 == 0 && aligned_to(g.C, 2 * sizeof(TC))};
  if (g.transA) {
    if (g.transB) launch_tc_typed<true, true, TC>(p, s); else launch_tc_typed<true, false, TC>(p, s);
  } else {
    if (g.transB) launch_tc_typed<false, true, TC>(p, s); else launch_tc_typed<false, false, TC>(p, s);
  }
}

void matmul_tc(const Gemm& g, cudaStream_t s) {
  if (g.c == Dtype::F32) launch_tc<float>(g, s); else launch_tc<bf16>(g, s);
}

void check_gemm(const Gemm& g) {
  const int a_cols = g.transA ? g.M : g.K, b_cols = g.transB ? g.K : g.N;
  if (g.M < 0 || g.N < 0 || g.K < 0 || g.lda < a_cols || g.ldb < b_cols || g.ldc < g.N || !g.A || !g.B || !g.C)
    throw std::invalid_argument("matmul: inconsistent shape, stride or null operand (M " + std::to_string(g.M) + ", N " +
                                std::to_string(g.N) + ", K " + std::to_string(g.K) + ", lda " + std::to_string(g.lda) + ", ldb " +
                                std::to_string(g.ldb) + ", ldc " + std::to_string(g.ldc) + ")");
}

// ---------------------------------------------------------------------------------------
// Bias gradient: dbias[n] += sum over m of dout[m, n], deterministically. Pass 1: block
// (column strip of 32, row chunk of 128) sums its chunk with 8 row-lanes per column, then
// combines the 8 partials in a fixed order into scratch[chunk, n]. Pass 2: one thread per
// column adds the chunks in order. Reads are coalesced along n (a warp reads 32 columns).
constexpr int kBiasCols = 32, kBiasRowLanes = 8, kBiasChunkRows = 128;

template <class T>
__global__ void __launch_bounds__(kBiasCols * kBiasRowLanes) bias_backward_partial_kernel(float* scratch, const T* dout, int M, int N) {
  __shared__ float part[kBiasRowLanes][kBiasCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * kBiasCols + tx;
  const int r0 = blockIdx.y * kBiasChunkRows, r1 = min(M, r0 + kBiasChunkRows);
  float s = 0.0f;
  if (col < N)
    for (int r = r0 + ty; r < r1; r += kBiasRowLanes) s += to_float(dout[(size_t)r * N + col]);
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && col < N) {
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < kBiasRowLanes; i++) total += part[i][tx];
    scratch[(size_t)blockIdx.y * N + col] = total;
  }
}

__global__ void bias_backward_final_kernel(float* dbias, const float* scratch, int chunks, int N) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= N) return;
  float s = 0.0f;
  for (int c = 0; c < chunks; c++) s += scratch[(size_t)c * N + col];
  dbias[col] += s;
}

template <class T>
void launch_bias_partial(dim3 grid, dim3 block, cudaStream_t s, float* scratch, const T* dout, int M, int N) {
  KILN_LAUNCH((bias_backward_partial_kernel<T>), grid, block, 0, s, scratch, dout, M, N);
}

int bias_chunks(int M) { return (M + kBiasChunkRows - 1) / kBiasChunkRows; }

}  // namespace

bool gemm_available(GemmImpl impl) {
  switch (impl) {
    case GemmImpl::Auto:
    case GemmImpl::Simt:
    case GemmImpl::TensorCore: return true;
    case GemmImpl::CublasLt:
#if defined(KILN_HAVE_CUBLASLT) && !KILN_EMU
      return true;
#else
      return false;
#endif
  }
  return false;
}

void matmul(const Gemm& g, cudaStream_t s, GemmImpl impl) {
  check_gemm(g);
  if (g.M == 0 || g.N == 0) return;
  if (impl == GemmImpl::Auto) {
    if (g.ab == Dtype::F32) impl = GemmImpl::Simt;
    else impl = gemm_available(GemmImpl::CublasLt) ? GemmImpl::CublasLt : GemmImpl::TensorCore;
  }
  switch (impl) {
    case GemmImpl::CublasLt:
#if defined(KILN_HAVE_CUBLASLT) && !KILN_EMU
      matmul_cublaslt(g, s);
      return;
#else
      throw std::invalid_argument("matmul: cuBLASLt is not part of this build (gemm_available(CublasLt) is false)");
#endif
    case GemmImpl::TensorCore:
      if (tc_supported(g)) {
        matmul_tc(g, s);
        return;
      }
      break;  // f32 operands, K or a stride not a multiple of 8, or misaligned: Simt
    default: break;
  }
  matmul_simt(g, s);
}

size_t bias_backward_scratch_floats(int M, int N) { return (size_t)bias_chunks(M) * (size_t)N; }

void bias_backward(Dtype dt, float* dbias, float* scratch, const void* dout, int M, int N, cudaStream_t s) {
  if (M <= 0 || N <= 0) return;
  const int chunks = bias_chunks(M);
  const dim3 grid((N + kBiasCols - 1) / kBiasCols, chunks), block(kBiasCols, kBiasRowLanes);
  if (dt == Dtype::F32) launch_bias_partial(grid, block, s, scratch, static_cast<const float*>(dout), M, N);
  else launch_bias_partial(grid, block, s, scratch, static_cast<const bf16*>(dout), M, N);
  KILN_LAUNCH(bias_backward_final_kernel, dim3((N + 255) / 256), dim3(256), 0, s, dbias, scratch, chunks, N);
}

}  // namespace kiln
