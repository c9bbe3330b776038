// One source, two compilers. Under nvcc this is plain CUDA; under a host C++ compiler
// (KILN_EMU) the same kernels run on emu/simt.h, a SIMT emulation in which a block's
// threads are fibers that switch at __syncthreads() and at warp-collective calls. So
// every kernel's index math and algorithm is tested on a machine without a GPU; races
// and speed are for compute-sanitizer and benchmarks on a real GPU.
//
// Kernels may use only what this header and intrinsics.cuh provide (listed in
// native/cuda/README.md), so that both builds see the same language.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define KILN_EMU 0
#define KILN_HD __host__ __device__
// Dynamic shared memory as a typed pointer, 16-byte aligned.
#define KILN_DYNAMIC_SHARED(type, name) \
  extern __shared__ __align__(16) unsigned char kiln_dyn_smem_[]; \
  type* name = reinterpret_cast<type*>(kiln_dyn_smem_)
// Launch a kernel: KILN_LAUNCH((kernel<T, 4>), grid, block, smem_bytes, stream, args...).
// The name in parentheses lets template arguments hold commas. The launch is skipped when
// KILN_CUDA_NOOP names this kernel (the mutation check: the tests must then fail).
#define KILN_LAUNCH(kernel, grid, block, smem, stream, ...)                      \
  do {                                                                           \
    if (!::kiln::noop_kernel(#kernel)) kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__); \
  } while (0)
#else
#include "../emu/simt.h"
#define KILN_EMU 1
#define KILN_HD
#define KILN_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::kiln_emu::dynamic_shared())
#define KILN_LAUNCH(kernel, grid, block, smem, stream, ...)                      \
  do {                                                                           \
    if (!::kiln::noop_kernel(#kernel)) ::kiln_emu::launch(#kernel, (grid), (block), (smem), (stream), kernel, ##__VA_ARGS__); \
  } while (0)
#endif

namespace kiln {
// bf16 storage as raw bits on both sides of the build (device code converts through
// to_float/from_float below), so host code and entry points never need cuda_bf16.h.
using bf16_bits = uint16_t;

// True when the environment variable KILN_CUDA_NOOP equals the launched kernel's name
// as written in KILN_LAUNCH (e.g. "(layernorm_forward_kernel<float>)" or "encoder_forward_kernel").
bool noop_kernel(const char* name);

// Round-to-nearest-even f32 -> bf16 and back, identical on host and device (NaN stays NaN).
KILN_HD inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
KILN_HD inline float bf16_bits_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// The activation storage types kernels are templated on: float (parity mode) or bf16
// (mixed precision; arithmetic always in f32). Load with to_float, store with from_float<T>.
struct alignas(2) bf16 {
  uint16_t bits;
};
KILN_HD inline float to_float(float x) { return x; }
KILN_HD inline float to_float(bf16 x) { return bf16_bits_to_f32(x.bits); }
template <class T> KILN_HD T from_float(float x);
template <> KILN_HD inline float from_float<float>(float x) { return x; }
template <> KILN_HD inline bf16 from_float<bf16>(float x) { return bf16{f32_to_bf16_bits(x)}; }
}  // namespace kiln

#include "intrinsics.cuh"
