// 128-bit vector access for the elementwise and row kernels (llm.c's Packed128): a chunk
// of 16 bytes of T (4 floats or 8 bf16) moves in one load/store instruction, which is what
// lets a memory-bound kernel reach the bandwidth roofline. Used by encoder, layernorm, gelu,
// dropout and convert.
//
// Vector access needs the address 16-byte aligned. Launchers decide once per launch with
// kiln::aligned16(...) over every base pointer (and a row length that keeps every row's
// start aligned); kernels then take the vector path for full chunks and fall back to
// scalar access for the tail and for misaligned launches, so any shape and offset works.
#pragma once
#include "../common/portable.cuh"

namespace kiln {

template <class T>
struct alignas(16) Packed {
  static constexpr int size = 16 / sizeof(T);
  T v[size];
};

// Host side: whether every pointer is 16-byte aligned (null pointers count as aligned).
template <class... P>
inline bool aligned16(const P*... ptrs) {
  return ((reinterpret_cast<uintptr_t>(ptrs) % 16 == 0) && ...);
}

// One 16-byte load/store. Through int4 so nvcc emits ld/st.global.v4 whatever T is; the
// emulation fails the launch on a misaligned address, where a GPU would fault.
template <class V>
__device__ __forceinline__ V load16(const void* p) {
  static_assert(sizeof(V) == 16, "load16 moves 16 bytes");
#if KILN_EMU
  if (reinterpret_cast<uintptr_t>(p) % 16) ::kiln_emu::fail("misaligned 128-bit load");
#endif
  const int4 bits = *reinterpret_cast<const int4*>(p);
  V v;
  memcpy(&v, &bits, 16);
  return v;
}
template <class V>
__device__ __forceinline__ void store16(void* p, const V& v) {
  static_assert(sizeof(V) == 16, "store16 moves 16 bytes");
#if KILN_EMU
  if (reinterpret_cast<uintptr_t>(p) % 16) ::kiln_emu::fail("misaligned 128-bit store");
#endif
  int4 bits;
  memcpy(&bits, &v, 16);
  *reinterpret_cast<int4*>(p) = bits;
}

// n (<= Packed<T>::size) elements of T at p into f[0..n); f[n..] = 0. `vec`: p is
// 16-byte aligned, so a full chunk is one vector load.
template <class T>
__device__ __forceinline__ void load_chunk(float (&f)[Packed<T>::size], const T* p, int n, bool vec) {
  if (vec && n == Packed<T>::size) {
    const Packed<T> x = load16<Packed<T>>(p);
#pragma unroll
    for (int k = 0; k < Packed<T>::size; k++) f[k] = to_float(x.v[k]);
  } else {
#pragma unroll
    for (int k = 0; k < Packed<T>::size; k++) f[k] = k < n ? to_float(p[k]) : 0.0f;
  }
}

// f[0..n) to p, rounded to T.
template <class T>
__device__ __forceinline__ void store_chunk(T* p, const float (&f)[Packed<T>::size], int n, bool vec) {
  if (vec && n == Packed<T>::size) {
    Packed<T> x;
#pragma unroll
    for (int k = 0; k < Packed<T>::size; k++) x.v[k] = from_float<T>(f[k]);
    store16(p, x);
  } else {
#pragma unroll
    for (int k = 0; k < Packed<T>::size; k++)
      if (k < n) p[k] = from_float<T>(f[k]);
  }
}

// The f32 side of a chunk of N (a multiple of 4) elements: f32 parameters and gradients
// next to a chunk of activations, as N/4 float4 accesses.
template <int N>
__device__ __forceinline__ void load_f32(float (&f)[N], const float* p, int n, bool vec) {
  static_assert(N % 4 == 0, "whole float4s");
  if (vec && n == N) {
#pragma unroll
    for (int k = 0; k < N; k += 4) {
      const float4 x = load16<float4>(p + k);
      f[k] = x.x; f[k + 1] = x.y; f[k + 2] = x.z; f[k + 3] = x.w;
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; k++) f[k] = k < n ? p[k] : 0.0f;
  }
}
template <int N>
__device__ __forceinline__ void store_f32(float* p, const float (&f)[N], int n, bool vec) {
  static_assert(N % 4 == 0, "whole float4s");
  if (vec && n == N) {
#pragma unroll
    for (int k = 0; k < N; k += 4) store16(p + k, make_float4(f[k], f[k + 1], f[k + 2], f[k + 3]));
  } else {
#pragma unroll
    for (int k = 0; k < N; k++)
      if (k < n) p[k] = f[k];
  }
}

// Blocks of `per_block` work items covering n (at least one, so a launch is always valid).
inline unsigned int blocks_for(size_t n, size_t per_block) { return (unsigned int)(n ? (n + per_block - 1) / per_block : 1); }

}  // namespace kiln
