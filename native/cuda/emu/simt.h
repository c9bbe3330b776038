// SIMT emulation: the slice of CUDA that Kiln's kernels use (native/cuda/README.md, "Rules
// for kernel code"), for a host C++17 compiler. common/portable.cuh includes this header
// when __CUDACC__ is not defined, so the same .cu files compile with g++ and run on the CPU.
//
// Model: a grid runs block after block; a block's threads are fibers on the launching OS
// thread. A fiber runs until it reaches __syncthreads() or a warp-collective call (shuffles,
// votes, __syncwarp, ldmatrix, mma), then the next ready fiber runs. Device memory is host
// memory.
// - __syncthreads() releases when every live thread of the block has arrived; threads that
//   returned no longer count (bar.sync's rule, which makes an early `return` before a
//   barrier work). Arrivals are counted, not matched by call site: g++ may duplicate a call
//   (jump threading, loop unswitching) where nvcc keeps barriers aligned, so a call-site
//   check would report correct kernels.
// - A warp collective releases when every lane in its mask has arrived; the last arriver
//   computes every lane's result. A mask naming a lane that exited (or does not exist in a
//   partial warp), lanes of one mask at different collectives, and a shuffle reading a lane
//   outside its mask are errors (undefined behaviour on a GPU).
// - A block in which no fiber can run is a deadlock (e.g. __syncthreads() in code where
//   other lanes of a warp wait at a shuffle): the launch stops, and the error names the
//   kernel, the block and what each group of threads waits at.
// Errors stop the launch with cudaErrorLaunchFailure (cudaGetLastError, and the next
// cudaDeviceSynchronize/cudaStreamSynchronize); cudaGetErrorString gives the details.
//
// Because blocks run one at a time and launches are serialised (from any host thread), a
// `__shared__` variable is `static`: one copy per kernel, reused by every block (which sees
// what the previous block left, as uninitialised as on a GPU from the kernel's view).
// Dynamic shared memory is filled with 0xff bytes (NaN as floats, -1 as ints) for every
// block, so reading what no thread wrote shows in results.
//
// What it checks: index math, algorithms, barrier and warp-collective discipline, launch
// limits. What it does not: races (compute-sanitizer racecheck on a GPU visit), memory
// ordering, speed. Threads start, and leave each barrier, in increasing order, so a missing
// __syncthreads before reading a higher thread's shared-memory write shows; with
// KILN_EMU_REVERSE=1 the order is decreasing, which shows the other direction.
//
// Fibers switch with a few instructions on x86-64 and with ucontext elsewhere (or with
// -DKILN_EMU_UCONTEXT); each has a 64 KiB stack (KILN_EMU_STACK_KB) above a guard page, so a
// kernel that overflows it crashes at once (SIGSEGV) rather than corrupting memory.
#pragma once
#if defined(__CUDACC__)
#error "emu/simt.h is the host-compiler stand-in for CUDA; nvcc builds use the real runtime"
#endif

// `#pragma unroll` is nvcc's: g++ ignores it, and warns unless -Wno-unknown-pragmas (which
// the kiln_emu CMake target passes on to everything that links it; a diagnostic pragma here
// cannot silence it, GCC bug 53431).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- Declaration specifiers. `__restrict__` is a g++/clang keyword already. No
// `__noinline__`: libstdc++ and glibc spell their own attribute __attribute__((__noinline__)),
// which such a macro would break for every header included after this one.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))

// ---- Vector types: aggregates with CUDA's alignment, so `__shared__ float4 s[...]` has no
// dynamic initialisation and the same layout as on the GPU.
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct __align__(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int3 make_int3(int x, int y, int z) { return int3{x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned int x, unsigned int y) { return uint2{x, y}; }
inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return uint3{x, y, z}; }
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return uint4{x, y, z, w}; }

// ---- Host runtime types and error codes (values as in CUDA's driver_types.h).
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

// The fields of cudaDeviceProp that host code plausibly reads; the emulated device has
// compute capability 8.0: the feature level emulated (mma.sync, ldmatrix, cp.async), so
// code that picks sm_90-only paths (wgmma, TMA) by capability does not pick them here.
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int maxThreadsPerMultiProcessor;
  int clockRate;
  int memoryClockRate;
  int memoryBusWidth;
  int l2CacheSize;
  int major;
  int minor;
  int multiProcessorCount;
  int integrated;
  int unifiedAddressing;
};

cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
template <class T>
inline cudaError_t cudaMallocHost(T** ptr, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);

namespace kiln_emu {
// Kernels are identified by their address as one function-pointer type (casts between
// function-pointer types round-trip; through void* only conditionally, as g++ allows).
using AnyFn = void (*)();
cudaError_t set_func_attribute(AnyFn kernel, cudaFuncAttribute attr, int value);
}  // namespace kiln_emu

// Both of CUDA's forms: the kernel itself (kernel<T>), or its address as const void*.
template <class R, class... P>
inline cudaError_t cudaFuncSetAttribute(R (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return ::kiln_emu::set_func_attribute(reinterpret_cast<::kiln_emu::AnyFn>(kernel), attr, value);
}
inline cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  return ::kiln_emu::set_func_attribute(reinterpret_cast<::kiln_emu::AnyFn>(kernel), attr, value);
}

// ---- The fiber runtime behind the device language.
namespace kiln_emu {
namespace detail {
struct BlockView {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  void* dynamic_shared;
};
struct ThreadView {
  uint3 thread_idx;
  unsigned int lane;
  const BlockView* block;
};
// The running fiber. __thread (not thread_local) so that reads need no TLS-init wrapper:
// it is a plain pointer with constant initialisation.
extern __thread const ThreadView* current;
[[noreturn]] void not_in_kernel(const char* what);
inline const ThreadView& here(const char* what) {
  const ThreadView* t = current;
  if (__builtin_expect(t == nullptr, 0)) not_in_kernel(what);
  return *t;
}

struct LaunchSpec {
  const char* name;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  AnyFn kernel;
  void (*run)(AnyFn kernel, void* params);  // calls the kernel with a copy of params
  void* params;
};
void launch(const LaunchSpec& spec);

template <class Fn, class Tuple>
void run_kernel(AnyFn kernel, void* params) {
  // std::apply passes the tuple's elements as lvalues, so each thread gets its own copy
  // of every parameter (kernels may modify their parameters, as on a GPU).
  std::apply(reinterpret_cast<Fn>(kernel), *static_cast<Tuple*>(params));
}
}  // namespace detail

// Launches kernel on grid x block as KILN_LAUNCH does: checks the configuration as a GPU
// would (errors go to cudaGetLastError, nothing runs), then runs every block to completion
// before returning (the stream is nominal: all work is synchronous). A deadlock or a broken
// warp-collective discipline stops the launch with cudaErrorLaunchFailure, returned by
// cudaGetLastError and the next synchronize, its text naming the kernel and block.
template <class... P, class... A>
void launch(const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, void (*kernel)(P...), A&&... args) {
  // Through a function pointer, default arguments are gone: pass every parameter.
  static_assert(sizeof...(P) == sizeof...(A), "KILN_LAUNCH: wrong number of kernel arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  Params params(std::forward<A>(args)...);
  detail::launch(detail::LaunchSpec{name, grid, block, smem, stream, reinterpret_cast<AnyFn>(kernel),
                                    &detail::run_kernel<void (*)(P...), Params>, &params});
}

// The current block's dynamic shared memory (KILN_DYNAMIC_SHARED), 128-byte aligned. Its
// contents start as a NaN pattern (0xff bytes) in every block, so reading what no thread
// wrote shows up in results.
inline void* dynamic_shared() { return detail::here("dynamic shared memory").block->dynamic_shared; }

// A warp-collective operation. Every lane named in `mask` calls warp_collective with the
// same op and mask and a pointer to its own argument (which stays valid while it waits);
// the last lane to arrive calls op.compute(args, mask), where args[l] is lane l's argument
// (null for lanes outside the mask), and the compute function writes each lane's result
// into its argument. op's address identifies the kind of call: lanes of one mask that
// arrive at different kinds are an error, as are mask lanes that exited or do not exist.
struct WarpOp {
  const char* name;
  void (*compute)(void* const* args, unsigned int mask);
};
void warp_collective(const WarpOp& op, unsigned int mask, void* arg);
// cp.async as the PTX ISA defines it for one thread: the copies issued since the last
// cp_async_commit form a group, and cp_async_wait(n) lands (16 bytes each, zero-filled past
// src_bytes) every committed group but the n most recent. Reading a destination before the
// wait that covers it reads what was there before (for dynamic shared memory, the 0xff
// pattern), as it may on a GPU. Uncommitted copies are not waited for; a thread's copies
// still pending when it returns land then.
void cp_async(void* dst, const void* src, int src_bytes);
void cp_async_commit();
void cp_async_wait(int pending);  // cp.async.wait_group pending
// Stops the launch with cudaErrorLaunchFailure and `message` (plus the kernel, block and
// thread); for device code that detects what a GPU would fault on (e.g. misalignment).
[[noreturn]] void fail(const char* message);
inline unsigned int lane_id() { return detail::here("lane id").lane; }
}  // namespace kiln_emu

// ---- Built-in variables.
#define threadIdx (::kiln_emu::detail::here("threadIdx").thread_idx)
#define blockIdx (::kiln_emu::detail::here("blockIdx").block->block_idx)
#define blockDim (::kiln_emu::detail::here("blockDim").block->block_dim)
#define gridDim (::kiln_emu::detail::here("gridDim").block->grid_dim)
// Not a constant expression, as on the GPU (nvcc rejects `float s[warpSize]`); a variable,
// not a macro, so cudaDeviceProp::warpSize stays a plain field name.
extern const int warpSize;

// ---- Barriers, warp shuffles and votes.
void __syncthreads();
void __syncwarp(unsigned int mask = 0xffffffffu);
unsigned int __ballot_sync(unsigned int mask, int predicate);
int __any_sync(unsigned int mask, int predicate);
int __all_sync(unsigned int mask, int predicate);
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace kiln_emu::detail {
enum class ShflMode { Idx, Up, Down, Bfly };
template <class T>
struct ShflArg {
  T value;
  int b;             // source lane, offset or lane mask
  unsigned int c;    // PTX's packed clamp value and segment mask
  T result;
};
// PTX ISA, shfl.sync ("Description" pseudocode): c = ((32 - width) << 8) | clamp, where the
// clamp is 0 for .up and 31 otherwise. A source lane out of the segment reads the lane's
// own value; a source lane outside the mask is undefined on a GPU, reported here.
template <class T, ShflMode M>
void shfl_compute(void* const* args, unsigned int mask) {
  T values[32];
  for (int l = 0; l < 32; ++l)
    if (args[l]) values[l] = static_cast<ShflArg<T>*>(args[l])->value;
  for (int lane = 0; lane < 32; ++lane) {
    if (!args[lane]) continue;
    auto* a = static_cast<ShflArg<T>*>(args[lane]);
    const int bval = a->b & 31, cval = a->c & 31, segmask = (a->c >> 8) & 31;
    const int max_lane = (lane & segmask) | (cval & ~segmask);
    const int min_lane = lane & segmask;
    int j = lane;
    bool in_range = true;
    switch (M) {
      case ShflMode::Up: j = lane - bval; in_range = j >= max_lane; break;
      case ShflMode::Down: j = lane + bval; in_range = j <= max_lane; break;
      case ShflMode::Bfly: j = lane ^ bval; in_range = j <= max_lane; break;
      case ShflMode::Idx: j = min_lane | (bval & ~segmask); in_range = j <= max_lane; break;
    }
    if (!in_range) j = lane;
    if (!(mask >> j & 1u)) fail("__shfl*_sync reads a source lane that is not in the mask (undefined on a GPU)");
    a->result = values[j];
  }
}
template <class T, ShflMode M>
struct ShflOp {
  static constexpr WarpOp op{M == ShflMode::Idx ? "__shfl_sync" : M == ShflMode::Up ? "__shfl_up_sync"
                             : M == ShflMode::Down ? "__shfl_down_sync" : "__shfl_xor_sync",
                             &shfl_compute<T, M>};
};
template <class T, ShflMode M>
inline T shfl(unsigned int mask, T value, int b, int width) {
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail("__shfl*_sync: width must be a power of two in [1, 32]");
  ShflArg<T> a{value, b, (unsigned int)((32 - width) << 8) | (M == ShflMode::Up ? 0u : 31u), T()};
  warp_collective(ShflOp<T, M>::op, mask, &a);
  return a.result;
}
}  // namespace kiln_emu::detail

// The overloads CUDA has (so code nvcc rejects is rejected here too).
#define KILN_EMU_SHFL(T)                                                                          \
  inline T __shfl_sync(unsigned int mask, T var, int src, int width = 32) {                      \
    return ::kiln_emu::detail::shfl<T, ::kiln_emu::detail::ShflMode::Idx>(mask, var, src, width); \
  }                                                                                               \
  inline T __shfl_up_sync(unsigned int mask, T var, unsigned int delta, int width = 32) {        \
    return ::kiln_emu::detail::shfl<T, ::kiln_emu::detail::ShflMode::Up>(mask, var, (int)delta, width); \
  }                                                                                               \
  inline T __shfl_down_sync(unsigned int mask, T var, unsigned int delta, int width = 32) {      \
    return ::kiln_emu::detail::shfl<T, ::kiln_emu::detail::ShflMode::Down>(mask, var, (int)delta, width); \
  }                                                                                               \
  inline T __shfl_xor_sync(unsigned int mask, T var, int lane_mask, int width = 32) {           \
    return ::kiln_emu::detail::shfl<T, ::kiln_emu::detail::ShflMode::Bfly>(mask, var, lane_mask, width); \
  }
KILN_EMU_SHFL(int)
KILN_EMU_SHFL(unsigned int)
KILN_EMU_SHFL(long)
KILN_EMU_SHFL(unsigned long)
KILN_EMU_SHFL(long long)
KILN_EMU_SHFL(unsigned long long)
KILN_EMU_SHFL(float)
KILN_EMU_SHFL(double)
#undef KILN_EMU_SHFL

// ---- Atomics: integer only (kernels are deterministic: no float atomics). Blocks and
// threads never run concurrently here, so a plain read-modify-write is atomic.
#define KILN_EMU_ATOMICS(T)                                              \
  inline T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; } \
  inline T atomicSub(T* p, T v) { T old = *p; *p = old - v; return old; } \
  inline T atomicMax(T* p, T v) { T old = *p; if (v > old) *p = v; return old; } \
  inline T atomicMin(T* p, T v) { T old = *p; if (v < old) *p = v; return old; } \
  inline T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }   \
  inline T atomicCAS(T* p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }
KILN_EMU_ATOMICS(int)
KILN_EMU_ATOMICS(unsigned int)
#undef KILN_EMU_ATOMICS
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  unsigned long long old = *p;
  *p = old + v;
  return old;
}

// ---- Math: the libm functions come from <math.h>; these are CUDA's extras. The fast
// intrinsics are exact here: tests compare with tolerances that cover the GPU's versions.
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
// The explicitly rounded operations nvcc never contracts into an FMA (g++ in ISO mode does
// not contract at all, so plain arithmetic already behaves like these here).
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
inline unsigned int __float_as_uint(float x) { unsigned int i; memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned int x) { float f; memcpy(&f, &x, 4); return f; }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}

// Integer and float min/max: the overload set of CUDA's math_functions.hpp, mixed
// signedness included (it resolves to the unsigned type, as CUDA's does).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
#define KILN_EMU_MINMAX(R, A, B)                                     \
  inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }        \
  inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
KILN_EMU_MINMAX(unsigned int, unsigned int, unsigned int)
KILN_EMU_MINMAX(unsigned int, int, unsigned int)
KILN_EMU_MINMAX(unsigned int, unsigned int, int)
KILN_EMU_MINMAX(long, long, long)
KILN_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
KILN_EMU_MINMAX(unsigned long, long, unsigned long)
KILN_EMU_MINMAX(unsigned long, unsigned long, long)
KILN_EMU_MINMAX(long long, long long, long long)
KILN_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
KILN_EMU_MINMAX(unsigned long long, long long, unsigned long long)
KILN_EMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef KILN_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin((double)a, b); }
inline double max(float a, double b) { return fmax((double)a, b); }
inline double min(double a, float b) { return fmin(a, (double)b); }
inline double max(double a, float b) { return fmax(a, (double)b); }
