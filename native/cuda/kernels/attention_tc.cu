// Causal self-attention's tensor-core kernels and their launches (kernels/attention.cu has
// the algorithm, the SIMT kernels and the launchers of kernels.h, whose use_tc picks this
// path for bf16 with a head size of 64 or 128).
//
// ---- Tensor-core path: bf16 storage, head size 64 or 128 (mma.sync m16n8k16, f32
// accumulation); the same blocks, grid and passes as the SIMT kernels. Four warps, each
// owning 16 of the block's 64 rows (the mma's M). Tiles arrive by cp.async and live in
// shared memory as bf16 with a row stride of D + 8 elements: each row starts 4 banks after
// the previous one, so the 8 rows an ldmatrix phase reads cover the 32 banks once. A score
// tile comes out of the mma in the accumulator layout, which is the A-operand layout of
// the next product (FlashAttention-2's register reuse): P and dS reach the tensor core
// rounded to bf16, while the softmax arithmetic and every accumulator stay f32. The
// forward overlaps the next K tile's copy with P V and the next V tile's with Q K^T.
#include "attention_common.cuh"

namespace kiln {
namespace {

using attn::DropoutMask;
using attn::Shape;
using attn::check_launch;
using attn::drop_factor;

namespace tc {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16 * kWarps;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return (uint32_t)f32_to_bf16_bits(lo) | ((uint32_t)f32_to_bf16_bits(hi) << 16);
}

// ROWS x D of a global bf16 matrix (row stride `stride` elements) into a [ROWS][D+8] tile
// with cp.async; rows >= nrows are zero-filled without being read.
template <int D, int ROWS>
__device__ __forceinline__ void load_async(bf16* dst, const bf16* src, size_t stride, int nrows) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
#pragma unroll
  for (int idx = threadIdx.x; idx < ROWS * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const bool ok = r < nrows;
    cp_async16(dst + r * (D + 8) + c * 8, src + (size_t)(ok ? r : 0) * stride + c * 8, ok ? 16 : 0);
  }
}

// A operand: rows r0..r0+15, columns k0..k0+15 of a [..][D+8] tile.
template <int D>
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const bf16* tile, int r0, int k0) {
  const int l = threadIdx.x % 32;
  ldmatrix_x4(a, tile + (r0 + (l & 7) + ((l >> 3) & 1) * 8) * (D + 8) + k0 + (l >> 4) * 8);
}
// B operands of the n-tiles n0 and n0 + 8 (b[0..1], b[2..3]) over k0..k0+15, where
// B[k][n] = tile[n][k]: products against the tile's rows (scores: Q K^T, dO V^T).
template <int D>
__device__ __forceinline__ void frag_b_rows(uint32_t (&b)[4], const bf16* tile, int n0, int k0) {
  const int l = threadIdx.x % 32;
  ldmatrix_x4(b, tile + (n0 + (l & 7) + (l >> 4) * 8) * (D + 8) + k0 + ((l >> 3) & 1) * 8);
}
// Likewise with B[k][n] = tile[k][n]: the tile's rows are the reduced dimension (P V, dS K).
template <int D>
__device__ __forceinline__ void frag_b_cols(uint32_t (&b)[4], const bf16* tile, int k0, int n0) {
  const int l = threadIdx.x % 32;
  ldmatrix_x4_trans(b, tile + (k0 + (l & 7) + ((l >> 3) & 1) * 8) * (D + 8) + n0 + (l >> 4) * 8);
}
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const uint32_t b[2] = {b0, b1};
  mma_m16n8k16_bf16(d, a, b, d);
}
// One k-step: acc (16 x 8*NT) += A (16 x 16, fragments a) times B (16 x 8*NT) from `tile`,
// read as rows (mma_rows: B[k][n] = tile[n][k0+k]) or as columns (mma_cols: tile[k0+k][n]).
template <int D, int NT>
__device__ __forceinline__ void mma_rows(float (&acc)[NT][4], const uint32_t (&a)[4], const bf16* tile, int k0) {
#pragma unroll
  for (int np = 0; np < NT / 2; np++) {
    uint32_t b[4];
    frag_b_rows<D>(b, tile, np * 16, k0);
    mma(acc[2 * np], a, b[0], b[1]);
    mma(acc[2 * np + 1], a, b[2], b[3]);
  }
}
template <int D, int NT>
__device__ __forceinline__ void mma_cols(float (&acc)[NT][4], const uint32_t (&a)[4], const bf16* tile, int k0) {
#pragma unroll
  for (int np = 0; np < NT / 2; np++) {
    uint32_t b[4];
    frag_b_cols<D>(b, tile, k0, np * 16);
    mma(acc[2 * np], a, b[0], b[1]);
    mma(acc[2 * np + 1], a, b[2], b[3]);
  }
}
// Accumulator element e of n-tile n holds row g + 8*(e/2), column n*8 + 2t + e%2 (g =
// lane/4, t = lane%4) of the warp's 16 rows, so columns 16kk..16kk+15 in the accumulator
// layout are k-step kk in the A layout.
template <int NT>
__device__ __forceinline__ void to_a(uint32_t (&a)[4], const float (&acc)[NT][4], int kk) {
  a[0] = pack_bf16(acc[2 * kk][0], acc[2 * kk][1]);
  a[1] = pack_bf16(acc[2 * kk][2], acc[2 * kk][3]);
  a[2] = pack_bf16(acc[2 * kk + 1][0], acc[2 * kk + 1][1]);
  a[3] = pack_bf16(acc[2 * kk + 1][2], acc[2 * kk + 1][3]);
}
// Reductions over the 4 lanes of a quad (the same lane / 4), which share accumulator rows.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

constexpr int kFwdKeys = 64;  // keys per forward tile
// Streamed rows per backward tile: fewer at D = 128, where dK and dV (or dQ, Q and dO) fill the registers.
template <int D>
constexpr int kBwdCols = D == 64 ? 64 : 32;

}  // namespace tc

template <int D>
__global__ void __launch_bounds__(tc::kThreads)
    attention_forward_tc_kernel(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ qkv, int Tn, int C, int NH,
                                float scale, DropoutMask mask) {
  using namespace tc;
  constexpr int LD = D + 8, BN = kFwdKeys, NT = BN / 8, KD = D / 16, ND = D / 8;
  KILN_DYNAMIC_SHARED(bf16, smem);
  bf16* Qs = smem;             // [kRows][LD]
  bf16* Ks = Qs + kRows * LD;  // [BN][LD]
  bf16* Vs = Ks + BN * LD;     // [BN][LD]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t C3 = 3 * (size_t)C;
  const bf16* base = qkv + (size_t)b * Tn * C3 + (size_t)h * D;
  const int qrows = min(kRows, Tn - q0);
  const int ntiles = (q0 + qrows - 1) / BN + 1;
  const uint32_t bh = (uint32_t)(b * NH + h);
  const int r_lo = q0 + warp * 16 + g;  // this lane's rows: r_lo and r_lo + 8

  // Groups: {Q, K_0}, {V_0}; then per tile {K_next}, {V_next}, so "all but the newest
  // group" is always this tile's K and "all" its V, and each load overlaps a product.
  load_async<D, kRows>(Qs, base + (size_t)q0 * C3, C3, qrows);
  load_async<D, BN>(Ks, base + C, C3, Tn);
  cp_async_commit();
  load_async<D, BN>(Vs, base + 2 * C, C3, Tn);
  cp_async_commit();

  uint32_t qf[KD][4];
  float o[ND][4];
#pragma unroll
  for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int kt = 0; kt < ntiles; kt++) {
    const int k0 = kt * BN;
    cp_async_wait<1>();
    __syncthreads();  // every thread's copies of this K tile (and Q) have landed
    if (kt == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; kk++) frag_a<D>(qf[kk], Qs, warp * 16, kk * 16);
    }
    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; kk++) mma_rows<D, NT>(s, qf[kk], Ks, kk * 16);

    const bool need_mask = k0 + BN - 1 > q0 || q0 + kRows > Tn;
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const int r = r_lo + 8 * hr;
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 2 * hr; e < 2 * hr + 2; e++) {
          float v = s[n][e] * scale;
          const int c = k0 + n * 8 + 2 * t + (e & 1);
          if (need_mask && (r >= Tn || c > r)) v = -INFINITY;
          s[n][e] = v;
          mx = fmaxf(mx, v);
        }
      const float m_new = fmaxf(m[hr], quad_max(mx));
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = expf(m[hr] - m_use);
      m[hr] = m_new;
      const uint32_t row = (bh * (uint32_t)Tn + (uint32_t)r) * (uint32_t)Tn;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 2 * hr; e < 2 * hr + 2; e++) {
          const float p = expf(s[n][e] - m_use);
          sum += p;
          const int c = k0 + n * 8 + 2 * t + (e & 1);
          s[n][e] = mask.on ? p * drop_factor(mask, row + (uint32_t)c) : p;
        }
      l[hr] = l[hr] * alpha + sum;
#pragma unroll
      for (int n = 0; n < ND; n++) {
        o[n][2 * hr] *= alpha;
        o[n][2 * hr + 1] *= alpha;
      }
    }

    cp_async_wait<0>();
    __syncthreads();  // this V tile has landed, and every warp is done with Ks
    if (kt + 1 < ntiles) load_async<D, BN>(Ks, base + C + (size_t)(k0 + BN) * C3, C3, Tn - k0 - BN);
    cp_async_commit();
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t pf[4];
      to_a<NT>(pf, s, kk);
      mma_cols<D, ND>(o, pf, Vs, kk * 16);
    }
    __syncthreads();  // every warp is done with Vs
    if (kt + 1 < ntiles) load_async<D, BN>(Vs, base + 2 * C + (size_t)(k0 + BN) * C3, C3, Tn - k0 - BN);
    cp_async_commit();
  }

#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const float sum = quad_sum(l[hr]);
    const int r = r_lo + 8 * hr;
    if (r >= Tn) continue;
    const float inv = 1.f / sum;
    bf16* orow = out + ((size_t)b * Tn + r) * C + (size_t)h * D;
#pragma unroll
    for (int n = 0; n < ND; n++) {
      orow[n * 8 + 2 * t] = from_float<bf16>(o[n][2 * hr] * inv);
      orow[n * 8 + 2 * t + 1] = from_float<bf16>(o[n][2 * hr + 1] * inv);
    }
    if (t == 0) lse[(size_t)bh * Tn + r] = m[hr] + logf(sum);
  }
}

// P*Z and dS in place of the raw score and dP accumulators: qk maps an element to its
// (query, key), stat to its query's lse and Delta (a row's or a column's, by the pass).
template <int NT, class QK, class Stat>
__device__ __forceinline__ void softmax_grad_tc(float (&s)[NT][4], float (&dp)[NT][4], QK qk, Stat stat, bool need_mask, int Tn, float scale,
                                                uint32_t bh, const DropoutMask& mask) {
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int q, k;
      qk(n, e, q, k);
      float l, dl;
      stat(n, e, l, dl);
      float p = expf(s[n][e] * scale - l);
      if (need_mask && (q >= Tn || k > q)) p = 0.f;
      const float z = mask.on ? drop_factor(mask, (bh * (uint32_t)Tn + (uint32_t)q) * (uint32_t)Tn + (uint32_t)k) : 1.f;
      dp[n][e] = p * (dp[n][e] * z - dl);
      s[n][e] = p * z;
    }
}

template <int D>
__global__ void __launch_bounds__(tc::kThreads)
    attention_backward_dkv_tc_kernel(bf16* __restrict__ dqkv, const bf16* __restrict__ dout, const bf16* __restrict__ qkv,
                                     const float* __restrict__ lse, const float* __restrict__ delta, int Tn, int C, int NH, float scale,
                                     DropoutMask mask) {
  using namespace tc;
  constexpr int LD = D + 8, BQ = kBwdCols<D>, NT = BQ / 8, KD = D / 16, ND = D / 8;
  KILN_DYNAMIC_SHARED(bf16, smem);
  bf16* Ks = smem;              // [kRows][LD]
  bf16* Vs = Ks + kRows * LD;   // [kRows][LD]
  bf16* Qs = Vs + kRows * LD;   // [BQ][LD]
  bf16* dOs = Qs + BQ * LD;     // [BQ][LD]
  float* lse_s = reinterpret_cast<float*>(dOs + BQ * LD);
  float* delta_s = lse_s + BQ;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int k0 = blockIdx.x * kRows;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t C3 = 3 * (size_t)C;
  const size_t boff = (size_t)b * Tn * C3 + (size_t)h * D;
  const bf16* base = qkv + boff;
  const bf16* dobase = dout + (size_t)b * Tn * C + (size_t)h * D;
  const uint32_t bh = (uint32_t)(b * NH + h);
  const int r_lo = k0 + warp * 16 + g;  // this lane's keys: r_lo and r_lo + 8

  load_async<D, kRows>(Ks, base + C + (size_t)k0 * C3, C3, Tn - k0);
  load_async<D, kRows>(Vs, base + 2 * C + (size_t)k0 * C3, C3, Tn - k0);
  cp_async_commit();

  float dk[ND][4], dv[ND][4];
#pragma unroll
  for (int n = 0; n < ND; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.f;

  for (int q0 = k0 / BQ * BQ; q0 < Tn; q0 += BQ) {
    __syncthreads();  // the previous query tile is read
    load_async<D, BQ>(Qs, base + (size_t)q0 * C3, C3, Tn - q0);
    load_async<D, BQ>(dOs, dobase + (size_t)q0 * C, C, Tn - q0);
    cp_async_commit();
    if (threadIdx.x < BQ) {
      const int q = q0 + threadIdx.x;
      lse_s[threadIdx.x] = q < Tn ? lse[(size_t)bh * Tn + q] : 0.f;
      delta_s[threadIdx.x] = q < Tn ? delta[(size_t)bh * Tn + q] : 0.f;
    }
    cp_async_wait<0>();
    __syncthreads();

    // S^T = K Q^T and dP^T = V dO^T: rows are this warp's keys, columns the queries.
    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; kk++) {
      uint32_t a[4];
      frag_a<D>(a, Ks, warp * 16, kk * 16);
      mma_rows<D, NT>(s, a, Qs, kk * 16);
      frag_a<D>(a, Vs, warp * 16, kk * 16);
      mma_rows<D, NT>(dp, a, dOs, kk * 16);
    }
    const bool need_mask = k0 + kRows - 1 > q0 || q0 + BQ > Tn;
    softmax_grad_tc<NT>(
        s, dp, [&](int n, int e, int& q, int& k) { q = q0 + n * 8 + 2 * t + (e & 1); k = r_lo + 8 * (e >> 1); },
        [&](int n, int e, float& l, float& dl) {
          const int c = n * 8 + 2 * t + (e & 1);
          l = lse_s[c];
          dl = delta_s[c];
        },
        need_mask, Tn, scale, bh, mask);
    // dV += (P*Z)^T dO, dK += dS^T Q (scaled at the end).
#pragma unroll
    for (int kk = 0; kk < BQ / 16; kk++) {
      uint32_t a[4];
      to_a<NT>(a, s, kk);
      mma_cols<D, ND>(dv, a, dOs, kk * 16);
      to_a<NT>(a, dp, kk);
      mma_cols<D, ND>(dk, a, Qs, kk * 16);
    }
  }

#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int k = r_lo + 8 * hr;
    if (k >= Tn) continue;
    bf16* row = dqkv + boff + (size_t)k * C3;
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int d = n * 8 + 2 * t + e;
        row[C + d] = from_float<bf16>(dk[n][2 * hr + e] * scale);
        row[2 * C + d] = from_float<bf16>(dv[n][2 * hr + e]);
      }
  }
}

template <int D>
__global__ void __launch_bounds__(tc::kThreads)
    attention_backward_dq_tc_kernel(bf16* __restrict__ dqkv, const bf16* __restrict__ dout, const bf16* __restrict__ qkv,
                                    const float* __restrict__ lse, const float* __restrict__ delta, int Tn, int C, int NH, float scale,
                                    DropoutMask mask) {
  using namespace tc;
  constexpr int LD = D + 8, BK = kBwdCols<D>, NT = BK / 8, KD = D / 16, ND = D / 8;
  KILN_DYNAMIC_SHARED(bf16, smem);
  bf16* Qs = smem;              // [kRows][LD]
  bf16* dOs = Qs + kRows * LD;  // [kRows][LD]
  bf16* Ks = dOs + kRows * LD;  // [BK][LD]
  bf16* Vs = Ks + BK * LD;      // [BK][LD]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int h = blockIdx.y, b = blockIdx.z;
  const size_t C3 = 3 * (size_t)C;
  const size_t boff = (size_t)b * Tn * C3 + (size_t)h * D;
  const bf16* base = qkv + boff;
  const int qrows = min(kRows, Tn - q0);
  const int ntiles = (q0 + qrows - 1) / BK + 1;
  const uint32_t bh = (uint32_t)(b * NH + h);
  const int r_lo = q0 + warp * 16 + g;

  load_async<D, kRows>(Qs, base + (size_t)q0 * C3, C3, qrows);
  load_async<D, kRows>(dOs, dout + ((size_t)b * Tn + q0) * C + (size_t)h * D, C, qrows);
  cp_async_commit();
  float lr[2], dr[2];
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = r_lo + 8 * hr;
    lr[hr] = r < Tn ? lse[(size_t)bh * Tn + r] : 0.f;
    dr[hr] = r < Tn ? delta[(size_t)bh * Tn + r] : 0.f;
  }

  uint32_t qf[KD][4], of[KD][4];
  float acc[ND][4];
#pragma unroll
  for (int n = 0; n < ND; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int kt = 0; kt < ntiles; kt++) {
    const int k0 = kt * BK;
    __syncthreads();  // the previous K, V tile is read
    load_async<D, BK>(Ks, base + C + (size_t)k0 * C3, C3, Tn - k0);
    load_async<D, BK>(Vs, base + 2 * C + (size_t)k0 * C3, C3, Tn - k0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (kt == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        frag_a<D>(qf[kk], Qs, warp * 16, kk * 16);
        frag_a<D>(of[kk], dOs, warp * 16, kk * 16);
      }
    }
    float s[NT][4], dp[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; kk++) {
      mma_rows<D, NT>(s, qf[kk], Ks, kk * 16);
      mma_rows<D, NT>(dp, of[kk], Vs, kk * 16);
    }
    const bool need_mask = k0 + BK - 1 > q0 || q0 + kRows > Tn;
    softmax_grad_tc<NT>(
        s, dp, [&](int n, int e, int& q, int& k) { q = r_lo + 8 * (e >> 1); k = k0 + n * 8 + 2 * t + (e & 1); },
        [&](int, int e, float& l, float& dl) {
          l = lr[e >> 1];
          dl = dr[e >> 1];
        },
        need_mask, Tn, scale, bh, mask);
    // dQ += dS K (scaled at the end).
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
      uint32_t a[4];
      to_a<NT>(a, dp, kk);
      mma_cols<D, ND>(acc, a, Ks, kk * 16);
    }
  }

#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = r_lo + 8 * hr;
    if (r >= Tn) continue;
    bf16* row = dqkv + boff + (size_t)r * C3;
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) row[n * 8 + 2 * t + e] = from_float<bf16>(acc[n][2 * hr + e] * scale);
  }
}

constexpr size_t tc_tile_bytes(int rows, int D) { return (size_t)rows * (D + 8) * sizeof(bf16); }

template <int D>
void forward_tc_d(void* out, float* lse, const void* qkv, int B, int Tn, int C, int NH, const Shape& sh, cudaStream_t s) {
  const size_t smem = tc_tile_bytes(tc::kRows + 2 * tc::kFwdKeys, D);
  check_launch(cudaFuncSetAttribute(attention_forward_tc_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
               "attention_forward: shared memory");
  const dim3 grid((Tn + tc::kRows - 1) / tc::kRows, NH, B);
  KILN_LAUNCH((attention_forward_tc_kernel<D>), grid, tc::kThreads, smem, s, static_cast<bf16*>(out), lse, static_cast<const bf16*>(qkv), Tn,
              C, NH, sh.scale, sh.mask);
}

template <int D>
void backward_tc_d(void* dqkv, const float* delta, const void* dout, const void* qkv, const float* lse, int B, int Tn, int C, int NH,
                   const Shape& sh, cudaStream_t s) {
  bf16* dq = static_cast<bf16*>(dqkv);
  const bf16* d_o = static_cast<const bf16*>(dout);
  const bf16* x = static_cast<const bf16*>(qkv);
  constexpr int cols = tc::kBwdCols<D>;
  const size_t smem_kv = tc_tile_bytes(2 * tc::kRows + 2 * cols, D) + 2 * cols * sizeof(float);
  const size_t smem_q = tc_tile_bytes(2 * tc::kRows + 2 * cols, D);
  check_launch(cudaFuncSetAttribute(attention_backward_dkv_tc_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv),
               "attention_backward: shared memory");
  check_launch(cudaFuncSetAttribute(attention_backward_dq_tc_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q),
               "attention_backward: shared memory");
  const dim3 grid((Tn + tc::kRows - 1) / tc::kRows, NH, B);
  KILN_LAUNCH((attention_backward_dkv_tc_kernel<D>), grid, tc::kThreads, smem_kv, s, dq, d_o, x, lse, delta, Tn, C, NH, sh.scale, sh.mask);
  KILN_LAUNCH((attention_backward_dq_tc_kernel<D>), grid, tc::kThreads, smem_q, s, dq, d_o, x, lse, delta, Tn, C, NH, sh.scale, sh.mask);
}

}  // namespace

namespace attn {

void forward_tc(void* out, float* lse, const void* qkv, int B, int Tn, int C, int NH, const Shape& sh, cudaStream_t s) {
  if (sh.hs == 64) forward_tc_d<64>(out, lse, qkv, B, Tn, C, NH, sh, s);
  else forward_tc_d<128>(out, lse, qkv, B, Tn, C, NH, sh, s);
}

void backward_tc(void* dqkv, const float* delta, const void* dout, const void* qkv, const float* lse, int B, int Tn, int C, int NH,
                 const Shape& sh, cudaStream_t s) {
  if (sh.hs == 64) backward_tc_d<64>(dqkv, delta, dout, qkv, lse, B, Tn, C, NH, sh, s);
  else backward_tc_d<128>(dqkv, delta, dout, qkv, lse, B, Tn, C, NH, sh, s);
}

}  // namespace attn
}  // namespace kiln
