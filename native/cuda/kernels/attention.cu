// Causal self-attention, flash-style (src/reference/attention.ts): FlashAttention-2's
// tiling. The (T,T) scores never leave the chip: the forward streams key and value tiles
// past a tile of query rows with an online softmax and saves each row's log-sum-exp; the
// backward recomputes the probabilities from it. Two implementations of the same
// algorithm: SIMT FMA kernels for every dtype and head size (f32 is the parity mode, so
// its products stay exact f32), and tensor-core kernels (mma.sync, bf16 operands, f32
// accumulation) that Auto picks for bf16 with a head size of 64 or 128, in
// attention_tc.cu; attention_common.cuh has what both files share.
//
// SIMT: one thread layout serves every kernel. A block of 128 threads owns kBM = 64 rows (query
// rows in the forward and the dQ pass, key rows in the dK/dV pass) and streams tiles of
// kBN = 32 rows of the other side through shared memory. Thread (tr, tc) = (tid / 8,
// tid % 8) holds the 4 x 4 score micro-tile rows tr + 16i, columns tc + 8j, and the
// (kBM, D) accumulator's rows tr + 16i, dims tc + 8m. A row's 8 threads are consecutive
// lanes of one warp, so its reductions are three xor-shuffles, and the rescaling of the
// online softmax touches only registers of the thread that computed the factor.
//
// The head size hs is served by a kernel compiled for D = the next of 8, 16, 32, 64, 128:
// tiles are zero beyond hs, so a head of 12 runs the D = 16 kernel (exact sizes pay no
// padding) and every inner loop has a compile-time trip count.
//
// Shared tiles are f32, row-major with a row stride of D + 1: with 8 lanes reading 8
// different rows at the same d (the score products) the odd stride puts them in 8 banks,
// and lanes reading consecutive d of one row (the accumulator products, the tile loads)
// stay in consecutive banks. Probability tiles are stored transposed, [column][row] with
// stride kBM + 4, so the threads of a warp (4 rows x 8 columns) write 32 distinct banks.
//
// Determinism without float atomics (both paths): the backward runs one pass over key tiles that owns
// dK and dV (looping over every query tile at or below the diagonal), and one over query
// tiles that owns dQ (recomputing S and dP for its key tiles): each element of dqkv is
// written once by the thread that summed it in a fixed order. It costs the recomputation
// of two of the five tile products; a dQ accumulator in scratch would need atomics or
// O(T/kBM) times the memory.
#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include "attention_common.cuh"

namespace kiln {


namespace {

using attn::DropoutMask;
using attn::Shape;
using attn::check_launch;
using attn::drop_factor;

constexpr int kThreads = 128;
constexpr int kTR = 16;              // thread rows
constexpr int kTC = 8;               // thread columns: the lanes sharing one row
constexpr int kTM = 4;               // rows per thread
constexpr int kTN = 4;               // columns per thread
constexpr int kBM = kTR * kTM;       // rows a block owns
constexpr int kBN = kTC * kTN;       // rows of the streamed tile
constexpr int kPStride = kBM + 4;    // transposed probability tiles, [kBN][kPStride]
static_assert(kTR * kTC == kThreads, "thread grid");
static_assert(kTC == 8, "row reductions shuffle over 8 lanes");

// rows x D of a (row stride `stride`) global matrix into a [rows][D+1] f32 tile, times
// `mul`; rows >= nrows and dims >= hs read as 0, so padded rows and dims add nothing.
template <class T, int D, int ROWS>
__device__ __forceinline__ void load_tile(float* dst, const T* src, size_t stride, int nrows, int hs, float mul) {
#pragma unroll 4
  for (int idx = threadIdx.x; idx < ROWS * D; idx += kThreads) {
    const int r = idx / D, d = idx % D;
    float v = 0.f;
    if (r < nrows && d < hs) v = to_float(src[(size_t)r * stride + d]) * mul;
    dst[r * (D + 1) + d] = v;
  }
}

// Sum over the 8 lanes of a row (all 32 lanes call it: the layout keeps control uniform).
__device__ __forceinline__ float row_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v;
}
__device__ __forceinline__ float row_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 4));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return v;
}

// acc[i][j] += sum_d A[rowA(i)][d] * B[rowB(j)][d], A rows tr + 16i (kTM of them), B rows
// tc + 8j (kTN): a score micro-tile from two [..][D+1] tiles.
template <int D>
__device__ __forceinline__ void tile_dot(float (&acc)[kTM][kTN], const float* A, const float* B, int tr, int tc) {
#pragma unroll 8
  for (int d = 0; d < D; d++) {
    float a[kTM], b[kTN];
#pragma unroll
    for (int i = 0; i < kTM; i++) a[i] = A[(tr + kTR * i) * (D + 1) + d];
#pragma unroll
    for (int j = 0; j < kTN; j++) b[j] = B[(tc + kTC * j) * (D + 1) + d];
#pragma unroll
    for (int i = 0; i < kTM; i++)
#pragma unroll
      for (int j = 0; j < kTN; j++) acc[i][j] += a[i] * b[j];
  }
}

// ---- forward: a block per (query tile, head, batch item).
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(T* __restrict__ out, float* __restrict__ lse, const T* __restrict__ qkv, int Tn, int C, int NH, int hs,
                             float scale, DropoutMask mask) {
  KILN_DYNAMIC_SHARED(float, smem);
  float* Qs = smem;                // [kBM][D+1], pre-scaled by 1/sqrt(hs)
  float* Ks = Qs + kBM * (D + 1);  // [kBN][D+1]
  float* Vs = Ks + kBN * (D + 1);  // [kBN][D+1]
  float* Ps = Vs + kBN * (D + 1);  // [kBN][kPStride]: the (dropped) probabilities, transposed
  constexpr int DM = D / kTC;      // accumulator dims per thread

  const int tid = threadIdx.x, tr = tid / kTC, tc = tid % kTC;
  // Causal rows below the diagonal carry the most tiles: launch them first.
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kBM;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t C3 = 3 * (size_t)C;
  const T* base = qkv + (size_t)b * Tn * C3 + (size_t)h * hs;
  const int qrows = min(kBM, Tn - q0);
  const uint32_t bh = (uint32_t)(b * NH + h);

  load_tile<T, D, kBM>(Qs, base + (size_t)q0 * C3, C3, qrows, hs, scale);

  float o[kTM][DM];
  float m[kTM], l[kTM];  // running max (row-uniform) and this thread's part of the sum
#pragma unroll
  for (int i = 0; i < kTM; i++) {
    m[i] = -INFINITY;
    l[i] = 0.f;
#pragma unroll
    for (int c = 0; c < DM; c++) o[i][c] = 0.f;
  }

  // Key tiles past the last query row are entirely masked: skipped.
  const int ntiles = (q0 + qrows - 1) / kBN + 1;
  for (int kt = 0; kt < ntiles; kt++) {
    const int k0 = kt * kBN;
    __syncthreads();  // the previous tile's Ks, Vs, Ps are read
    load_tile<T, D, kBN>(Ks, base + C + (size_t)k0 * C3, C3, Tn - k0, hs, 1.f);
    load_tile<T, D, kBN>(Vs, base + 2 * C + (size_t)k0 * C3, C3, Tn - k0, hs, 1.f);
    __syncthreads();

    float s[kTM][kTN] = {};
    tile_dot<D>(s, Qs, Ks, tr, tc);
    // Only tiles that cross the diagonal or the end of the rows need the mask.
    if (k0 + kBN - 1 > q0 || q0 + kBM > Tn) {
#pragma unroll
      for (int i = 0; i < kTM; i++)
#pragma unroll
        for (int j = 0; j < kTN; j++) {
          const int q = q0 + tr + kTR * i, k = k0 + tc + kTC * j;
          if (q >= Tn || k > q) s[i][j] = -INFINITY;
        }
    }
#pragma unroll
    for (int i = 0; i < kTM; i++) {
      float mx = s[i][0];
#pragma unroll
      for (int j = 1; j < kTN; j++) mx = fmaxf(mx, s[i][j]);
      const float m_new = fmaxf(m[i], row_max(mx));
      // A row masked so far (only rows past T) keeps its zeros and never makes inf - inf.
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = expf(m[i] - m_use);
      m[i] = m_new;
      const int q = q0 + tr + kTR * i;
      const uint32_t row = (bh * (uint32_t)Tn + (uint32_t)q) * (uint32_t)Tn;
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < kTN; j++) {
        const float p = expf(s[i][j] - m_use);
        sum += p;  // the normaliser is the undropped softmax's
        const int k = k0 + tc + kTC * j;
        const float pz = mask.on ? p * drop_factor(mask, row + (uint32_t)k) : p;
        Ps[(tc + kTC * j) * kPStride + tr + kTR * i] = pz;
      }
      l[i] = l[i] * alpha + sum;
#pragma unroll
      for (int c = 0; c < DM; c++) o[i][c] *= alpha;
    }
    __syncthreads();  // Ps complete

#pragma unroll 4
    for (int k = 0; k < kBN; k++) {
      float p[kTM], v[DM];
#pragma unroll
      for (int i = 0; i < kTM; i++) p[i] = Ps[k * kPStride + tr + kTR * i];
#pragma unroll
      for (int c = 0; c < DM; c++) v[c] = Vs[k * (D + 1) + tc + kTC * c];
#pragma unroll
      for (int i = 0; i < kTM; i++)
#pragma unroll
        for (int c = 0; c < DM; c++) o[i][c] += p[i] * v[c];
    }
  }

#pragma unroll
  for (int i = 0; i < kTM; i++) {
    const float sum = row_sum(l[i]);
    const int q = q0 + tr + kTR * i;
    if (q >= Tn) continue;
    const float inv = 1.f / sum;
    T* orow = out + ((size_t)b * Tn + q) * C + (size_t)h * hs;
#pragma unroll
    for (int c = 0; c < DM; c++) {
      const int d = tc + kTC * c;
      if (d < hs) orow[d] = from_float<T>(o[i][c] * inv);
    }
    if (tc == 0) lse[(size_t)bh * Tn + q] = m[i] + logf(sum);
  }
}

// ---- backward, 1: Delta_t = dO_t . O_t per (b, h, t), a warp per row. It stands for
// sum_t2 P Z dP~ in the softmax gradient (O = (P*Z) V, so it holds with dropout too).
template <class T>
__global__ void attention_backward_delta_kernel(float* __restrict__ delta, const T* __restrict__ dout, const T* __restrict__ out, int B,
                                                int Tn, int C, int NH, int hs) {
  const int warps = blockDim.x / 32;
  const int row = blockIdx.x * warps + threadIdx.x / 32;  // (b*NH + h)*T + t
  const int lane = threadIdx.x % 32;
  if (row >= B * NH * Tn) return;  // whole warps leave together
  const int t = row % Tn, bh = row / Tn, h = bh % NH, b = bh / NH;
  const size_t off = ((size_t)b * Tn + t) * C + (size_t)h * hs;
  float acc = 0.f;
  for (int d = lane; d < hs; d += 32) acc += to_float(dout[off + d]) * to_float(out[off + d]);
#pragma unroll
  for (int w = 16; w > 0; w >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, w);
  if (lane == 0) delta[row] = acc;
}

// P, dS for one score micro-tile. s holds scores of pre-scaled q, dp = dO . v; rows and
// columns map to (query, key) through qk(). Returns P*Z in s and dS in dp.
template <class QK>
__device__ __forceinline__ void softmax_grad(float (&s)[kTM][kTN], float (&dp)[kTM][kTN], QK qk, bool need_mask, int Tn,
                                             const float (&lse_q)[kTM][kTN], const float (&delta_q)[kTM][kTN], uint32_t bh,
                                             const DropoutMask& mask) {
#pragma unroll
  for (int i = 0; i < kTM; i++)
#pragma unroll
    for (int j = 0; j < kTN; j++) {
      int q, k;
      qk(i, j, q, k);
      float p = expf(s[i][j] - lse_q[i][j]);
      if (need_mask && (q >= Tn || k > q)) p = 0.f;
      const float z = mask.on ? drop_factor(mask, (bh * (uint32_t)Tn + (uint32_t)q) * (uint32_t)Tn + (uint32_t)k) : 1.f;
      dp[i][j] = p * (dp[i][j] * z - delta_q[i][j]);
      s[i][j] = p * z;
    }
}

// ---- backward, 2: dK and dV, a block per (key tile, head, batch item), over every query
// tile at or below the diagonal.
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkv_kernel(T* __restrict__ dqkv, const T* __restrict__ dout, const T* __restrict__ qkv, const float* __restrict__ lse,
                                  const float* __restrict__ delta, int Tn, int C, int NH, int hs, float scale, DropoutMask mask) {
  KILN_DYNAMIC_SHARED(float, smem);
  float* Ks = smem;                  // [kBM][D+1]
  float* Vs = Ks + kBM * (D + 1);    // [kBM][D+1]
  float* Qs = Vs + kBM * (D + 1);    // [kBN][D+1], pre-scaled: S and dK = dS^T (Q*scale) at once
  float* dOs = Qs + kBN * (D + 1);   // [kBN][D+1]
  float* PZs = dOs + kBN * (D + 1);  // [kBN][kPStride]: P*Z, [query][key]
  float* dSs = PZs + kBN * kPStride; // [kBN][kPStride]: dS, [query][key]
  float* lse_s = dSs + kBN * kPStride;
  float* delta_s = lse_s + kBN;
  constexpr int DM = D / kTC;

  const int tid = threadIdx.x, tr = tid / kTC, tc = tid % kTC;
  const int k0 = blockIdx.x * kBM;  // the first key tiles see the most queries: first
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t C3 = 3 * (size_t)C;
  const size_t boff = (size_t)b * Tn * C3 + (size_t)h * hs;
  const T* base = qkv + boff;
  const T* dobase = dout + (size_t)b * Tn * C + (size_t)h * hs;
  const uint32_t bh = (uint32_t)(b * NH + h);
  const float* lse_bh = lse + (size_t)bh * Tn;
  const float* delta_bh = delta + (size_t)bh * Tn;

  load_tile<T, D, kBM>(Ks, base + C + (size_t)k0 * C3, C3, Tn - k0, hs, 1.f);
  load_tile<T, D, kBM>(Vs, base + 2 * C + (size_t)k0 * C3, C3, Tn - k0, hs, 1.f);

  float dk[kTM][DM], dv[kTM][DM];
#pragma unroll
  for (int i = 0; i < kTM; i++)
#pragma unroll
    for (int c = 0; c < DM; c++) dk[i][c] = dv[i][c] = 0.f;

  // Thread (tr, tc) scores keys k0 + tr + 16i against queries q0 + tc + 8j.
  for (int q0 = k0 / kBN * kBN; q0 < Tn; q0 += kBN) {
    __syncthreads();  // the previous query tile is read
    load_tile<T, D, kBN>(Qs, base + (size_t)q0 * C3, C3, Tn - q0, hs, scale);
    load_tile<T, D, kBN>(dOs, dobase + (size_t)q0 * C, C, Tn - q0, hs, 1.f);
    if (tid < kBN) {
      const bool ok = q0 + tid < Tn;
      lse_s[tid] = ok ? lse_bh[q0 + tid] : 0.f;
      delta_s[tid] = ok ? delta_bh[q0 + tid] : 0.f;
    }
    __syncthreads();

    float s[kTM][kTN] = {}, dp[kTM][kTN] = {};
    tile_dot<D>(s, Ks, Qs, tr, tc);
    tile_dot<D>(dp, Vs, dOs, tr, tc);
    float lq[kTM][kTN], dlt[kTM][kTN];
#pragma unroll
    for (int i = 0; i < kTM; i++)
#pragma unroll
      for (int j = 0; j < kTN; j++) {
        lq[i][j] = lse_s[tc + kTC * j];
        dlt[i][j] = delta_s[tc + kTC * j];
      }
    const bool need_mask = k0 + kBM - 1 > q0 || q0 + kBN > Tn;
    softmax_grad(s, dp, [&](int i, int j, int& q, int& k) { q = q0 + tc + kTC * j; k = k0 + tr + kTR * i; }, need_mask, Tn, lq, dlt, bh,
                 mask);
#pragma unroll
    for (int i = 0; i < kTM; i++)
#pragma unroll
      for (int j = 0; j < kTN; j++) {
        PZs[(tc + kTC * j) * kPStride + tr + kTR * i] = s[i][j];
        dSs[(tc + kTC * j) * kPStride + tr + kTR * i] = dp[i][j];
      }
    __syncthreads();  // PZs, dSs complete

    // dV += (P*Z)^T dO, dK += dS^T (Q*scale): thread rows are keys here.
#pragma unroll 4
    for (int q = 0; q < kBN; q++) {
      float pz[kTM], ds[kTM], g[DM], x[DM];
#pragma unroll
      for (int i = 0; i < kTM; i++) {
        pz[i] = PZs[q * kPStride + tr + kTR * i];
        ds[i] = dSs[q * kPStride + tr + kTR * i];
      }
#pragma unroll
      for (int c = 0; c < DM; c++) {
        g[c] = dOs[q * (D + 1) + tc + kTC * c];
        x[c] = Qs[q * (D + 1) + tc + kTC * c];
      }
#pragma unroll
      for (int i = 0; i < kTM; i++)
#pragma unroll
        for (int c = 0; c < DM; c++) {
          dv[i][c] += pz[i] * g[c];
          dk[i][c] += ds[i] * x[c];
        }
    }
  }

#pragma unroll
  for (int i = 0; i < kTM; i++) {
    const int k = k0 + tr + kTR * i;
    if (k >= Tn) continue;
    T* row = dqkv + boff + (size_t)k * C3;
#pragma unroll
    for (int c = 0; c < DM; c++) {
      const int d = tc + kTC * c;
      if (d < hs) {
        row[C + d] = from_float<T>(dk[i][c]);
        row[2 * C + d] = from_float<T>(dv[i][c]);
      }
    }
  }
}

// ---- backward, 3: dQ, a block per (query tile, head, batch item), over the key tiles at
// or below the diagonal.
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(T* __restrict__ dqkv, const T* __restrict__ dout, const T* __restrict__ qkv, const float* __restrict__ lse,
                                 const float* __restrict__ delta, int Tn, int C, int NH, int hs, float scale, DropoutMask mask) {
  KILN_DYNAMIC_SHARED(float, smem);
  float* Qs = smem;                 // [kBM][D+1], pre-scaled
  float* dOs = Qs + kBM * (D + 1);  // [kBM][D+1]
  float* Ks = dOs + kBM * (D + 1);  // [kBN][D+1]
  float* Vs = Ks + kBN * (D + 1);   // [kBN][D+1]
  float* dSs = Vs + kBN * (D + 1);  // [kBN][kPStride]: dS, [key][query]
  constexpr int DM = D / kTC;

  const int tid = threadIdx.x, tr = tid / kTC, tc = tid % kTC;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kBM;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t C3 = 3 * (size_t)C;
  const size_t boff = (size_t)b * Tn * C3 + (size_t)h * hs;
  const T* base = qkv + boff;
  const int qrows = min(kBM, Tn - q0);
  const uint32_t bh = (uint32_t)(b * NH + h);

  load_tile<T, D, kBM>(Qs, base + (size_t)q0 * C3, C3, qrows, hs, scale);
  load_tile<T, D, kBM>(dOs, dout + ((size_t)b * Tn + q0) * C + (size_t)h * hs, C, qrows, hs, 1.f);
  // This thread's rows' lse and Delta, broadcast over the columns for softmax_grad.
  float lq[kTM][kTN], dq_row[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; i++) {
    const int q = q0 + tr + kTR * i;
    const float l = q < Tn ? lse[(size_t)bh * Tn + q] : 0.f;
    const float dl = q < Tn ? delta[(size_t)bh * Tn + q] : 0.f;
#pragma unroll
    for (int j = 0; j < kTN; j++) {
      lq[i][j] = l;
      dq_row[i][j] = dl;
    }
  }

  float acc[kTM][DM];
#pragma unroll
  for (int i = 0; i < kTM; i++)
#pragma unroll
    for (int c = 0; c < DM; c++) acc[i][c] = 0.f;

  const int ntiles = (q0 + qrows - 1) / kBN + 1;
  for (int kt = 0; kt < ntiles; kt++) {
    const int k0 = kt * kBN;
    __syncthreads();  // the previous tile's Ks, dSs are read
    load_tile<T, D, kBN>(Ks, base + C + (size_t)k0 * C3, C3, Tn - k0, hs, 1.f);
    load_tile<T, D, kBN>(Vs, base + 2 * C + (size_t)k0 * C3, C3, Tn - k0, hs, 1.f);
    __syncthreads();

    float s[kTM][kTN] = {}, dp[kTM][kTN] = {};
    tile_dot<D>(s, Qs, Ks, tr, tc);
    tile_dot<D>(dp, dOs, Vs, tr, tc);
    const bool need_mask = k0 + kBN - 1 > q0 || q0 + kBM > Tn;
    softmax_grad(s, dp, [&](int i, int j, int& q, int& k) { q = q0 + tr + kTR * i; k = k0 + tc + kTC * j; }, need_mask, Tn, lq, dq_row, bh,
                 mask);
#pragma unroll
    for (int i = 0; i < kTM; i++)
#pragma unroll
      for (int j = 0; j < kTN; j++) dSs[(tc + kTC * j) * kPStride + tr + kTR * i] = dp[i][j];
    __syncthreads();  // dSs complete

#pragma unroll 4
    for (int k = 0; k < kBN; k++) {
      float ds[kTM], x[DM];
#pragma unroll
      for (int i = 0; i < kTM; i++) ds[i] = dSs[k * kPStride + tr + kTR * i];
#pragma unroll
      for (int c = 0; c < DM; c++) x[c] = Ks[k * (D + 1) + tc + kTC * c];
#pragma unroll
      for (int i = 0; i < kTM; i++)
#pragma unroll
        for (int c = 0; c < DM; c++) acc[i][c] += ds[i] * x[c];
    }
  }

#pragma unroll
  for (int i = 0; i < kTM; i++) {
    const int q = q0 + tr + kTR * i;
    if (q >= Tn) continue;
    T* row = dqkv + boff + (size_t)q * C3;
#pragma unroll
    for (int c = 0; c < DM; c++) {
      const int d = tc + kTC * c;
      if (d < hs) row[d] = from_float<T>(acc[i][c] * scale);
    }
  }
}

constexpr size_t forward_smem(int D) { return sizeof(float) * ((size_t)(kBM + 2 * kBN) * (D + 1) + (size_t)kBN * kPStride); }
constexpr size_t dkv_smem(int D) {
  return sizeof(float) * ((size_t)(2 * kBM + 2 * kBN) * (D + 1) + 2 * (size_t)kBN * kPStride + 2 * kBN);
}
constexpr size_t dq_smem(int D) { return sizeof(float) * ((size_t)(2 * kBM + 2 * kBN) * (D + 1) + (size_t)kBN * kPStride); }

template <class T> constexpr Dtype dtype_of() { return std::is_same<T, float>::value ? Dtype::F32 : Dtype::BF16; }

Shape shape_of(int C, int NH, double p, uint32_t key, const char* op) {
  if (NH < 1 || C % NH != 0) throw std::invalid_argument(std::string(op) + ": C must be a multiple of NH");
  const int hs = C / NH;
  if (hs > 128) throw std::invalid_argument(std::string(op) + ": head size " + std::to_string(hs) + " > 128 is not supported");
  Shape sh;
  sh.hs = hs;
  sh.scale = 1.f / sqrtf((float)hs);
  sh.mask.on = p > 0.0;
  sh.mask.key = key;
  sh.mask.threshold = sh.mask.on ? dropout_threshold(p) : 0u;
  sh.mask.scale = sh.mask.on ? dropout_scale(p) : 1.f;
  return sh;
}

template <class T, int D>
void forward_d(void* out, float* lse, const void* qkv, int B, int Tn, int C, int NH, const Shape& sh, cudaStream_t s) {
  const size_t smem = forward_smem(D);
  check_launch(cudaFuncSetAttribute(attention_forward_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
               "attention_forward: shared memory");
  const dim3 grid((Tn + kBM - 1) / kBM, NH, B);
  KILN_LAUNCH((attention_forward_kernel<T, D>), grid, kThreads, smem, s, static_cast<T*>(out), lse, static_cast<const T*>(qkv), Tn, C, NH,
              sh.hs, sh.scale, sh.mask);
}

template <class T, int D>
void backward_d(void* dqkv, const float* delta, const void* dout, const void* qkv, const float* lse, int B, int Tn, int C, int NH,
                const Shape& sh, cudaStream_t s) {
  T* dq = static_cast<T*>(dqkv);
  const T* d_o = static_cast<const T*>(dout);
  const T* x = static_cast<const T*>(qkv);
  const size_t smem_kv = dkv_smem(D), smem_q = dq_smem(D);
  check_launch(cudaFuncSetAttribute(attention_backward_dkv_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv),
               "attention_backward: shared memory");
  check_launch(cudaFuncSetAttribute(attention_backward_dq_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q),
               "attention_backward: shared memory");
  const dim3 grid((Tn + kBM - 1) / kBM, NH, B);
  KILN_LAUNCH((attention_backward_dkv_kernel<T, D>), grid, kThreads, smem_kv, s, dq, d_o, x, lse, delta, Tn, C, NH, sh.hs, sh.scale,
              sh.mask);
  KILN_LAUNCH((attention_backward_dq_kernel<T, D>), grid, kThreads, smem_q, s, dq, d_o, x, lse, delta, Tn, C, NH, sh.hs, sh.scale,
              sh.mask);
}
// The SIMT kernel for head size hs: D the next of 8, 16, 32, 64, 128.
template <class F>
void dispatch_d(int hs, F&& f) {
  if (hs <= 8) f.template operator()<8>();
  else if (hs <= 16) f.template operator()<16>();
  else if (hs <= 32) f.template operator()<32>();
  else if (hs <= 64) f.template operator()<64>();
  else f.template operator()<128>();
}

template <class T>
struct ForwardFn {
  void* out; float* lse; const void* qkv; int B, Tn, C, NH; const Shape& sh; cudaStream_t s;
  template <int D> void operator()() const { forward_d<T, D>(out, lse, qkv, B, Tn, C, NH, sh, s); }
};
template <class T>
struct BackwardFn {
  void* dqkv; const float* delta; const void* dout; const void* qkv; const float* lse; int B, Tn, C, NH; const Shape& sh; cudaStream_t s;
  template <int D> void operator()() const { backward_d<T, D>(dqkv, delta, dout, qkv, lse, B, Tn, C, NH, sh, s); }
};

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Whether the tensor-core kernels take this call: bf16, head size 64 or 128, and the
// tensors they copy with cp.async 16-byte aligned (every row offset then is too).
bool use_tc(AttentionImpl impl, Dtype dt, int hs, std::initializer_list<const void*> copied, const char* op) {
  const bool ok = dt == Dtype::BF16 && (hs == 64 || hs == 128) &&
                  std::all_of(copied.begin(), copied.end(), [](const void* p) { return aligned16(p); });
  if (impl == AttentionImpl::TensorCore && !ok)
    throw std::invalid_argument(std::string(op) + ": the tensor-core kernels need bf16, head size 64 or 128 and 16-byte aligned tensors");
  return ok && impl != AttentionImpl::Simt;
}

template <class T>
void backward_t(AttentionImpl impl, void* dqkv, float* delta, const void* dout, const void* qkv, const void* out, const float* lse, int B,
                int Tn, int C, int NH, const Shape& sh, cudaStream_t s) {
  constexpr int kDeltaWarps = 8;
  const int rows = B * NH * Tn;
  KILN_LAUNCH((attention_backward_delta_kernel<T>), (rows + kDeltaWarps - 1) / kDeltaWarps, 32 * kDeltaWarps, 0, s, delta,
              static_cast<const T*>(dout), static_cast<const T*>(out), B, Tn, C, NH, sh.hs);
  if (use_tc(impl, dtype_of<T>(), sh.hs, {dout, qkv}, "attention_backward")) {
    attn::backward_tc(dqkv, delta, dout, qkv, lse, B, Tn, C, NH, sh, s);
  } else {
    dispatch_d(sh.hs, BackwardFn<T>{dqkv, delta, dout, qkv, lse, B, Tn, C, NH, sh, s});
  }
}

}  // namespace

void attention_forward_impl(AttentionImpl impl, Dtype dt, void* out, float* lse, const void* qkv, int B, int T, int C, int NH,
                            double dropout_p, uint32_t dropout_key, cudaStream_t s) {
  const Shape sh = shape_of(C, NH, dropout_p, dropout_key, "attention_forward");
  if (use_tc(impl, dt, sh.hs, {qkv}, "attention_forward")) {
    attn::forward_tc(out, lse, qkv, B, T, C, NH, sh, s);
  } else if (dt == Dtype::F32) {
    dispatch_d(sh.hs, ForwardFn<float>{out, lse, qkv, B, T, C, NH, sh, s});
  } else {
    dispatch_d(sh.hs, ForwardFn<bf16>{out, lse, qkv, B, T, C, NH, sh, s});
  }
}

void attention_backward_impl(AttentionImpl impl, Dtype dt, void* dqkv, float* scratch, const void* dout, const void* qkv, const void* out,
                             const float* lse, int B, int T, int C, int NH, double dropout_p, uint32_t dropout_key, cudaStream_t s) {
  const Shape sh = shape_of(C, NH, dropout_p, dropout_key, "attention_backward");
  if (dt == Dtype::F32) backward_t<float>(impl, dqkv, scratch, dout, qkv, out, lse, B, T, C, NH, sh, s);
  else backward_t<bf16>(impl, dqkv, scratch, dout, qkv, out, lse, B, T, C, NH, sh, s);
}

void attention_forward(Dtype dt, void* out, float* lse, const void* qkv, int B, int T, int C, int NH, double dropout_p, uint32_t dropout_key,
                       cudaStream_t s) {
  attention_forward_impl(AttentionImpl::Auto, dt, out, lse, qkv, B, T, C, NH, dropout_p, dropout_key, s);
}

// Scratch holds Delta (B, NH, T).
size_t attention_backward_scratch_floats(int B, int T, int C, int NH) {
  (void)C;
  return (size_t)B * NH * T;
}

void attention_backward(Dtype dt, void* dqkv, float* scratch, const void* dout, const void* qkv, const void* out, const float* lse, int B,
                        int T, int C, int NH, double dropout_p, uint32_t dropout_key, cudaStream_t s) {
  attention_backward_impl(AttentionImpl::Auto, dt, dqkv, scratch, dout, qkv, out, lse, B, T, C, NH, dropout_p, dropout_key, s);
}

}  // namespace kiln
