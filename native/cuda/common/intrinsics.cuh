// Tensor-core and async-copy intrinsics with one signature for both builds: inline PTX
// under nvcc (sm_80+), and under the SIMT emulation (emu/simt.h) a reimplementation that
// follows the PTX ISA's documented semantics and fragment layouts, so the index math of a
// GEMM built on them is checked on machines without a GPU.
//
// References, in NVIDIA's PTX ISA ("Parallel Thread Execution ISA"):
// - cp.async (Data Movement and Conversion Instructions): the copy, src-size zero-fill,
//   cp.async.commit_group and cp.async.wait_group;
// - ldmatrix (Warp-level matrix load instruction), with its fragment layout per thread;
// - section 9.7.14.5.8, "Matrix Fragments for mma.m16n8k16 with floating point type": the
//   row/column formulas for A (.bf16), B (.bf16) and C/D (.f32) used below.
// native/cuda/emu/tests/emu_tests.cpp checks each layout; built with nvcc and run on a GPU,
// the same checks compare the hardware with it.
//
// Included by portable.cuh after kiln::bf16_bits_to_f32; do not include it directly.
#pragma once
#include <cstdint>

namespace kiln {

#if defined(__CUDACC__)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "kiln intrinsics need sm_80 or newer (cp.async, bf16 mma.sync)"
#endif

// Copies 16 bytes from global to shared memory asynchronously, bypassing L1 (.cg); bytes
// past src_bytes (0..16) are zero-filled and not read, so a tile's ragged edge needs no
// branch. Both addresses must be 16-byte aligned.
__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src, int src_bytes = 16) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes) : "memory");
}
// Closes the group of cp.async issued by this thread since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight. Other
// threads' copies need a __syncthreads() after this before they are visible.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: four 8x8 b16 matrices; lane l passes the
// address of row l%8 of matrix l/8 (16 bytes, 16-byte aligned). Lane l receives, of each
// matrix i, r[i] = elements (l/4, 2*(l%4)) in the low half and (l/4, 2*(l%4)+1) in the high.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row_addr) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
// Two matrices: lanes 0-15 pass row addresses (lanes 16-31's are ignored).
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem_row_addr) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a) : "memory");
}
// .trans: each matrix transposed on the way, so lane l receives (2*(l%4), l/4) and
// (2*(l%4)+1, l/4): loads a B operand stored k-major as the column fragment mma wants.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row_addr) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem_row_addr) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row_addr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a) : "memory");
}

// D (16x8 f32) = A (16x16 bf16, row-major fragments) * B (16x8 bf16, column fragments) + C.
// Fragments per lane (g = lane/4, t = lane%4; the lower-indexed element in the low half):
//   a[0] = A[g][2t..2t+1]    a[1] = A[g+8][2t..2t+1]  a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]    b[1] = B[2t+8..2t+9][g]
//   c[0..1] = C[g][2t..2t+1] c[2..3] = C[g+8][2t..2t+1]   (d likewise)
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

#else  // SIMT emulation

namespace emu_detail {
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
inline uint16_t lo16(uint32_t v) { return (uint16_t)(v & 0xffffu); }
inline uint16_t hi16(uint32_t v) { return (uint16_t)(v >> 16); }
inline uint32_t pack(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

template <int X, bool Trans>
struct LdmatrixArg {
  const void* addr;
  uint32_t r[X];
};
// Matrix i's row j is at the address lane 8*i + j passed. Without .trans lane l receives
// row l/4, columns 2*(l%4) and +1 of each matrix; with .trans the same positions of the
// transposed matrix, i.e. rows 2*(l%4) and +1 of column l/4.
template <int X, bool Trans>
void ldmatrix_compute(void* const* args, unsigned) {
  const uint16_t* rows[4 * 8];
  for (int i = 0; i < X * 8; ++i) {
    const void* p = static_cast<LdmatrixArg<X, Trans>*>(args[i])->addr;
    if (!aligned16(p)) ::kiln_emu::fail("ldmatrix: a row address is not 16-byte aligned (misaligned address on a GPU)");
    rows[i] = static_cast<const uint16_t*>(p);
  }
  for (int l = 0; l < 32; ++l) {
    auto* a = static_cast<LdmatrixArg<X, Trans>*>(args[l]);
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < X; ++i) {
      const uint16_t* const* m = rows + 8 * i;
      a->r[i] = Trans ? pack(m[2 * t][g], m[2 * t + 1][g]) : pack(m[g][2 * t], m[g][2 * t + 1]);
    }
  }
}
template <int X, bool Trans>
struct LdmatrixOp {
  static constexpr ::kiln_emu::WarpOp op{X == 4 ? (Trans ? "ldmatrix.x4.trans" : "ldmatrix.x4") : (Trans ? "ldmatrix.x2.trans" : "ldmatrix.x2"),
                                         &ldmatrix_compute<X, Trans>};
};
template <int X, bool Trans>
inline void ldmatrix(uint32_t (&r)[X], const void* smem_row_addr) {
  LdmatrixArg<X, Trans> a{smem_row_addr, {}};
  // .sync.aligned: the whole warp executes it together.
  ::kiln_emu::warp_collective(LdmatrixOp<X, Trans>::op, 0xffffffffu, &a);
  for (int i = 0; i < X; ++i) r[i] = a.r[i];
}

struct MmaArg {
  uint32_t a[4], b[2];
  float c[4], d[4];
};
// Assembles A, B and C from every lane's fragments (layouts above, PTX ISA 9.7.14.5.8),
// then D = A*B + C: each bf16 product is exact in f32, and the sum runs over k in order,
// in f32, starting from C. The tensor core's internal order and precision differ within
// f32 rounding; callers compare with tolerances.
inline void mma_compute(void* const* args, unsigned) {
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    const MmaArg* m = static_cast<const MmaArg*>(args[l]);
    const int g = l >> 2, t = l & 3;
    for (int h = 0; h < 2; ++h) {  // h: the register's low (0) or high (1) element
      auto e = [&](uint32_t v) { return bf16_bits_to_f32(h ? hi16(v) : lo16(v)); };
      A[g][2 * t + h] = e(m->a[0]);
      A[g + 8][2 * t + h] = e(m->a[1]);
      A[g][2 * t + 8 + h] = e(m->a[2]);
      A[g + 8][2 * t + 8 + h] = e(m->a[3]);
      B[2 * t + h][g] = e(m->b[0]);
      B[2 * t + 8 + h][g] = e(m->b[1]);
      C[g][2 * t + h] = m->c[h];
      C[g + 8][2 * t + h] = m->c[2 + h];
    }
  }
  float D[16][8];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      float acc = C[i][j];
      for (int k = 0; k < 16; ++k) acc += A[i][k] * B[k][j];
      D[i][j] = acc;
    }
  for (int l = 0; l < 32; ++l) {
    MmaArg* m = static_cast<MmaArg*>(args[l]);
    const int g = l >> 2, t = l & 3;
    m->d[0] = D[g][2 * t];
    m->d[1] = D[g][2 * t + 1];
    m->d[2] = D[g + 8][2 * t];
    m->d[3] = D[g + 8][2 * t + 1];
  }
}
inline constexpr ::kiln_emu::WarpOp mma_op{"mma.sync.m16n8k16", &mma_compute};
}  // namespace emu_detail

// cp.async lands at the wait that covers its group, not at issue (emu/simt.h, cp_async), so
// a pipeline that reads a stage before waiting for it, or waits for too few groups, reads
// stale data here as it may on a GPU.
inline void cp_async16(void* smem_dst, const void* gmem_src, int src_bytes = 16) {
  if (!emu_detail::aligned16(smem_dst) || !emu_detail::aligned16(gmem_src))
    ::kiln_emu::fail("cp_async16: an address is not 16-byte aligned (misaligned address on a GPU)");
  if (src_bytes < 0 || src_bytes > 16) ::kiln_emu::fail("cp_async16: src_bytes must be in [0, 16]");
  ::kiln_emu::cp_async(smem_dst, gmem_src, src_bytes);
}
inline void cp_async_commit() { ::kiln_emu::cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
  static_assert(N >= 0, "cp.async.wait_group takes a non-negative count");
  ::kiln_emu::cp_async_wait(N);
}

inline void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row_addr) { emu_detail::ldmatrix<4, false>(r, smem_row_addr); }
inline void ldmatrix_x2(uint32_t (&r)[2], const void* smem_row_addr) { emu_detail::ldmatrix<2, false>(r, smem_row_addr); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row_addr) { emu_detail::ldmatrix<4, true>(r, smem_row_addr); }
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem_row_addr) { emu_detail::ldmatrix<2, true>(r, smem_row_addr); }

inline void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  emu_detail::MmaArg m{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}, {}};
  // mma.sync.aligned: all 32 lanes of the warp, converged.
  ::kiln_emu::warp_collective(emu_detail::mma_op, 0xffffffffu, &m);
  for (int i = 0; i < 4; ++i) d[i] = m.d[i];
}

#endif

}  // namespace kiln
