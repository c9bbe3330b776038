// kiln_emu_tests: the SIMT emulation's own checks (run by tests/cuda/emu.test.ts). Each
// test prints "PASS name" or "FAIL name: why"; the exit status is the number of failures.
//
// The file is CUDA as well as C++: on a GPU, the checks that do not rely on the emulation's
// diagnostics (deadlocks, exited lanes, misalignment, poisoned shared memory) run unchanged,
// so the emulation's layouts and limits are checked against the hardware (from the root):
//   nvcc -std=c++17 -arch=sm_90 -I native/cuda -x cu native/cuda/emu/tests/emu_tests.cpp
//        native/cuda/emu/tests/kernels.cu -o /tmp/kiln_emu_tests_gpu && /tmp/kiln_emu_tests_gpu
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../../common/portable.cuh"
#include "kernels.h"

// common/noop.cpp (the addon's) reads KILN_CUDA_NOOP; these tests launch everything.
namespace kiln {
bool noop_kernel(const char*) { return false; }
}  // namespace kiln

namespace {

int failures = 0;
std::string current_failure;

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      if (current_failure.empty()) current_failure = std::string(#cond) + " (line " + std::to_string(__LINE__) + ")"; \
      return;                                                                                \
    }                                                                                        \
  } while (0)
#define CHECK_MSG(cond, msg)                                                                 \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      if (current_failure.empty()) current_failure = std::string(msg) + " (line " + std::to_string(__LINE__) + ")"; \
      return;                                                                                \
    }                                                                                        \
  } while (0)

void run(const char* name, void (*test)()) {
  current_failure.clear();
  // Every test starts and ends with no error pending.
  cudaGetLastError();
  cudaDeviceSynchronize();
  test();
  if (current_failure.empty()) {
    printf("PASS %s\n", name);
  } else {
    printf("FAIL %s: %s\n", name, current_failure.c_str());
    ++failures;
  }
  fflush(stdout);
}

// A device copy of a host vector (in the emulation device memory is host memory, but the
// tests keep to what a GPU needs).
template <class T>
struct Dev {
  T* p = nullptr;
  size_t n;
  explicit Dev(const std::vector<T>& host) : n(host.size()) {
    cudaMalloc(&p, sizeof(T) * n);
    cudaMemcpy(p, host.data(), sizeof(T) * n, cudaMemcpyHostToDevice);
  }
  explicit Dev(size_t count, unsigned char fill = 0) : n(count) {
    cudaMalloc(&p, sizeof(T) * n);
    cudaMemset(p, fill, sizeof(T) * n);
  }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  std::vector<T> get() const {
    std::vector<T> host(n);
    cudaMemcpy(host.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost);
    return host;
  }
};

uint16_t bf16(float f) { return kiln::f32_to_bf16_bits(f); }

// ---------------------------------------------------------------- barriers and shared memory

__global__ void block_sum_kernel(const float* in, float* out, int n) {
  __shared__ float s[1024];
  const int t = threadIdx.x;
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + t; i < n; i += gridDim.x * blockDim.x) v += in[i];
  s[t] = v;
  __syncthreads();
  // Works for any block size: fold the part above the largest power of two first.
  int p = 1;
  while (p * 2 <= (int)blockDim.x) p *= 2;
  if (t + p < (int)blockDim.x) s[t] += s[t + p];
  __syncthreads();
  for (int stride = p / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

void test_block_reduction() {
  for (int block : {1, 33, 256, 1024}) {
    const int n = 5000, grid = 3;
    std::vector<float> in(n);
    for (int i = 0; i < n; ++i) in[i] = (float)(i % 7) - 2.0f;  // small integers: exact sums
    Dev<float> d_in(in), d_out(grid);
    KILN_LAUNCH(block_sum_kernel, grid, block, 0, 0, d_in.p, d_out.p, n);
    CHECK(cudaGetLastError() == cudaSuccess);
    const std::vector<float> out = d_out.get();
    std::vector<double> expect(grid, 0.0);
    for (int b = 0; b < grid; ++b)
      for (int i = b * block; i < n; i += grid * block)
        for (int j = i; j < std::min(i + block, n); ++j) expect[b] += in[j];
    for (int b = 0; b < grid; ++b) CHECK_MSG(out[b] == (float)expect[b], "block " + std::to_string(b) + " of size " + std::to_string(block));
  }
}

// A 3-D block and grid: every thread writes its coordinates; checks the built-in variables.
__global__ void coords_kernel(int* out) {
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int nthreads = blockDim.x * blockDim.y * blockDim.z;
  int* o = out + 4 * (bid * nthreads + tid);
  o[0] = threadIdx.x + 100 * threadIdx.y + 10000 * threadIdx.z;
  o[1] = blockIdx.x + 100 * blockIdx.y + 10000 * blockIdx.z;
  o[2] = blockDim.x + 100 * blockDim.y + 10000 * blockDim.z;
  o[3] = gridDim.x + 100 * gridDim.y + 10000 * gridDim.z + 1000000 * warpSize;
}

void test_builtin_variables() {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const int nt = 30, nb = 12;
  Dev<int> d_out(4 * nt * nb, 0xff);
  KILN_LAUNCH(coords_kernel, grid, block, 0, 0, d_out.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<int> out = d_out.get();
  for (int bz = 0; bz < 2; ++bz)
    for (int by = 0; by < 2; ++by)
      for (int bx = 0; bx < 3; ++bx)
        for (int tz = 0; tz < 2; ++tz)
          for (int ty = 0; ty < 3; ++ty)
            for (int tx = 0; tx < 5; ++tx) {
              const int bid = bx + 3 * (by + 2 * bz), tid = tx + 5 * (ty + 3 * tz);
              const int* o = out.data() + 4 * (bid * nt + tid);
              CHECK(o[0] == tx + 100 * ty + 10000 * tz);
              CHECK(o[1] == bx + 100 * by + 10000 * bz);
              CHECK(o[2] == 5 + 100 * 3 + 10000 * 2);
              CHECK(o[3] == 3 + 100 * 2 + 10000 * 2 + 1000000 * 32);
            }
}

// Each thread gets its own copy of the parameters, as on a GPU: modifying one is private.
__global__ void param_copy_kernel(int* out, int n) {
  n += threadIdx.x;
  out += threadIdx.x;
  __syncthreads();  // every thread has modified its copies before any reads them
  *out = n;
}

void test_parameters_are_per_thread() {
  Dev<int> d_out(64, 0xff);
  KILN_LAUNCH(param_copy_kernel, 1, 64, 0, 0, d_out.p, 1000);
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<int> out = d_out.get();
  for (int i = 0; i < 64; ++i) CHECK(out[i] == 1000 + i);
}

// Threads that return before a barrier no longer count at it (as on a GPU).
__global__ void early_exit_kernel(const int* in, int* out, int n) {
  __shared__ int s[256];
  const int t = threadIdx.x;
  out += blockIdx.x * blockDim.x;
  if (t >= n) return;
  s[t] = in[t] * 2;
  __syncthreads();
  out[t] = s[n - 1 - t];
  __syncthreads();
  if (t % 3 == 0) return;  // a second round of exits, mid-kernel
  __syncthreads();
  out[t] += 1;
}

void test_early_exit_before_barrier() {
  const int n = 37;
  std::vector<int> in(128);
  for (int i = 0; i < 128; ++i) in[i] = i;
  Dev<int> d_in(in), d_out(256, 0xff);
  KILN_LAUNCH(early_exit_kernel, 2, 128, 0, 0, d_in.p, d_out.p, n);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<int> out = d_out.get();
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < n; ++t) CHECK(out[b * 128 + t] == 2 * (n - 1 - t) + (t % 3 == 0 ? 0 : 1));
    for (int t = n; t < 128; ++t) CHECK(out[b * 128 + t] == -1);
  }
}

// ---------------------------------------------------------------- warp shuffles and votes

// mode 0: butterfly sum (__shfl_xor_sync), every lane; 1: tree sum to lane 0
// (__shfl_down_sync); 2: inclusive scan (__shfl_up_sync); 3: rotate by one (__shfl_sync with
// per-lane sources); with `width`-lane segments.
template <class T>
__global__ void shuffle_kernel(const T* in, T* out, int mode, int width) {
  const unsigned full = 0xffffffffu;
  const int lane = threadIdx.x % 32;
  T v = in[blockIdx.x * blockDim.x + threadIdx.x];
  if (mode == 0) {
    for (int o = width / 2; o > 0; o /= 2) v += __shfl_xor_sync(full, v, o, width);
  } else if (mode == 1) {
    for (int o = width / 2; o > 0; o /= 2) v += __shfl_down_sync(full, v, o, width);
  } else if (mode == 2) {
    for (int o = 1; o < width; o *= 2) {
      const T other = __shfl_up_sync(full, v, o, width);
      if (lane % width >= o) v += other;
    }
  } else {
    v = __shfl_sync(full, v, lane + 1, width);  // srcLane wraps within the segment
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

template <class T>
void check_shuffles(const char* type) {
  const int n = 2 * 64;
  std::vector<T> in(n);
  for (int i = 0; i < n; ++i) in[i] = (T)((i * 37 + 11) % 23);
  Dev<T> d_in(in), d_out(n);
  for (int width : {32, 16, 8, 2}) {
    for (int mode = 0; mode < 4; ++mode) {
      KILN_LAUNCH((shuffle_kernel<T>), 2, 64, 0, 0, d_in.p, d_out.p, mode, width);
      CHECK(cudaGetLastError() == cudaSuccess);
      const std::vector<T> out = d_out.get();
      for (int i = 0; i < n; ++i) {
        const int seg = i / width * width, pos = i % width;
        T expect = 0;
        if (mode == 0) {
          for (int j = 0; j < width; ++j) expect += in[seg + j];
        } else if (mode == 1) {
          // Tree sum: lane p ends with the sum over lanes p, p+1, ... as far as each step's
          // source stays in the segment (out of range: the lane keeps its own value).
          std::vector<T> v(in.begin() + seg, in.begin() + seg + width);
          for (int o = width / 2; o > 0; o /= 2) {
            std::vector<T> next = v;
            for (int j = 0; j < width; ++j) next[j] = v[j] + (j + o < width ? v[j + o] : v[j]);
            v = next;
          }
          expect = v[pos];
        } else if (mode == 2) {
          for (int j = 0; j <= pos; ++j) expect += in[seg + j];
        } else {
          expect = in[seg + (pos + 1) % width];
        }
        CHECK_MSG(out[i] == expect, std::string(type) + " mode " + std::to_string(mode) + " width " + std::to_string(width) +
                                        " element " + std::to_string(i));
      }
    }
  }
}

void test_shuffles() {
  check_shuffles<int>("int");
  if (!current_failure.empty()) return;
  check_shuffles<unsigned>("unsigned");
  if (!current_failure.empty()) return;
  check_shuffles<float>("float");
}

// A sub-warp mask: only the even lanes shuffle among themselves.
__global__ void submask_shuffle_kernel(int* out) {
  const int lane = threadIdx.x % 32;
  int v = lane;
  if (lane % 2 == 0) v = __shfl_xor_sync(0x55555555u, v, 2);
  out[threadIdx.x] = v;
}

void test_shuffle_with_partial_mask() {
  Dev<int> d_out(32, 0xff);
  KILN_LAUNCH(submask_shuffle_kernel, 1, 32, 0, 0, d_out.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<int> out = d_out.get();
  for (int l = 0; l < 32; ++l) CHECK(out[l] == (l % 2 == 0 ? (l ^ 2) : l));
}

__global__ void vote_kernel(const int* pred, unsigned* ballots, int* anys, int* alls) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int p = pred[i];
  ballots[i] = __ballot_sync(0xffffffffu, p);
  anys[i] = __any_sync(0xffffffffu, p);
  alls[i] = __all_sync(0xffffffffu, p);
  // A half-warp mask: votes over the lanes named only.
  if (threadIdx.x % 32 < 16) ballots[i] ^= __ballot_sync(0x0000ffffu, p) << 16;
}

void test_votes() {
  // Warp 0: mixed predicates (nonzero values other than 1 count as true); warp 1: all true;
  // warp 2: all false.
  const int n = 96;
  std::vector<int> pred(n);
  for (int i = 0; i < 32; ++i) pred[i] = (i % 3 == 0) ? (i + 1) * 7 : 0;
  for (int i = 32; i < 64; ++i) pred[i] = -1;
  for (int i = 64; i < 96; ++i) pred[i] = 0;
  Dev<int> d_pred(pred), d_anys(n), d_alls(n);
  Dev<unsigned> d_ballots(n);
  KILN_LAUNCH(vote_kernel, 1, n, 0, 0, d_pred.p, d_ballots.p, d_anys.p, d_alls.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<unsigned> ballots = d_ballots.get();
  const std::vector<int> anys = d_anys.get(), alls = d_alls.get();
  for (int w = 0; w < 3; ++w) {
    unsigned bits = 0;
    for (int l = 0; l < 32; ++l) bits |= (pred[32 * w + l] != 0 ? 1u : 0u) << l;
    for (int l = 0; l < 32; ++l) {
      const int i = 32 * w + l;
      const unsigned expect = l < 16 ? bits ^ ((bits & 0xffffu) << 16) : bits;
      CHECK(ballots[i] == expect);
      CHECK(anys[i] == (bits != 0));
      CHECK(alls[i] == (bits == 0xffffffffu));
    }
  }
}

// ---------------------------------------------------------------- failures that are reported
// (emulation only: on a GPU these hang, fault or give undefined results; and since device
// memory is host memory here, they hand kernels host vectors)
#if KILN_EMU

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Divergent __syncthreads: lanes 0-15 of each warp wait at the barrier, lanes 16-31 at a
// full-warp shuffle that needs lanes 0-15. On a GPU: a hang or worse.
__global__ void divergent_barrier_kernel(float* out) {
  float v = (float)threadIdx.x;
  if (threadIdx.x % 32 < 16) __syncthreads();
  v += __shfl_xor_sync(0xffffffffu, v, 16);
  out[threadIdx.x] = v;
}

__global__ void tiny_kernel(int* out) { out[blockIdx.x * blockDim.x + threadIdx.x] = 7; }

void test_deadlock_is_reported() {
  std::vector<float> out(64, 0.0f);
  const auto t0 = std::chrono::steady_clock::now();
  KILN_LAUNCH(divergent_barrier_kernel, 2, 64, 0, 0, out.data());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(seconds < 5.0);
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaErrorLaunchFailure);
  const std::string text = cudaGetErrorString(e);
  CHECK_MSG(contains(text, "divergent_barrier_kernel"), "message names the kernel: " + text);
  CHECK_MSG(contains(text, "block (0,0,0)"), "message names the first block: " + text);
  CHECK_MSG(contains(text, "deadlock"), "message says deadlock: " + text);
  CHECK_MSG(contains(text, "__syncthreads()"), "message names the barrier: " + text);
  CHECK_MSG(contains(text, "__shfl_xor_sync(mask 0xffffffff)"), "message names the shuffle: " + text);
  CHECK_MSG(contains(text, "threads 0-15,32-47 wait at __syncthreads()"), "message lists the threads at the barrier: " + text);
  // The launch stopped at its first block: the second never wrote.
  CHECK(cudaGetLastError() == cudaSuccess);  // read and cleared
  CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  // And the emulation recovers: the next launch runs.
  std::vector<int> ok(64, 0);
  KILN_LAUNCH(tiny_kernel, 2, 32, 0, 0, ok.data());
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(std::all_of(ok.begin(), ok.end(), [](int v) { return v == 7; }));
}

void test_stream_synchronize_reports_failure() {
  std::vector<float> out(64, 0.0f);
  cudaStream_t s;
  CHECK(cudaStreamCreate(&s) == cudaSuccess);
  KILN_LAUNCH(divergent_barrier_kernel, 1, 64, 0, s, out.data());
  CHECK(cudaStreamSynchronize(s) == cudaErrorLaunchFailure);
  CHECK(cudaPeekAtLastError() == cudaErrorLaunchFailure);
  CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
  CHECK(cudaStreamDestroy(s) == cudaSuccess);
}

// A lane named in the mask has returned: undefined on a GPU, an error here.
__global__ void exited_lane_kernel(int* out, int n) {
  if ((int)threadIdx.x >= n) return;
  int v = threadIdx.x;
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}

void test_exited_lane_in_mask() {
  std::vector<int> out(32, 0);
  KILN_LAUNCH(exited_lane_kernel, 1, 32, 0, 0, out.data(), 20);
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaErrorLaunchFailure);
  const std::string text = cudaGetErrorString(e);
  CHECK_MSG(contains(text, "__shfl_down_sync") && contains(text, "exited"), text);
}

// A block of 48 threads: its second warp has 16 lanes, so a full mask names lanes that do
// not exist.
void test_partial_warp_full_mask() {
  std::vector<int> out(64, 0);
  KILN_LAUNCH(exited_lane_kernel, 1, 48, 0, 0, out.data(), 48);
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaErrorLaunchFailure);
  CHECK_MSG(contains(cudaGetErrorString(e), "lanes 16-31"), cudaGetErrorString(e));
}

// Lanes of one mask at different collectives.
__global__ void mismatched_collectives_kernel(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x < 8) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else v = (int)__ballot_sync(0xffffffffu, v & 1);
  out[threadIdx.x] = v;
}

void test_mismatched_collectives() {
  std::vector<int> out(32, 0);
  KILN_LAUNCH(mismatched_collectives_kernel, 1, 32, 0, 0, out.data());
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaErrorLaunchFailure);
  const std::string text = cudaGetErrorString(e);
  CHECK_MSG(contains(text, "__ballot_sync") && contains(text, "__shfl_xor_sync"), text);
}

// A shuffle reading a lane outside its mask.
__global__ void source_outside_mask_kernel(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x < 16) v = __shfl_sync(0x0000ffffu, v, 20);
  out[threadIdx.x] = v;
}

void test_shuffle_source_outside_mask() {
  std::vector<int> out(32, 0);
  KILN_LAUNCH(source_outside_mask_kernel, 1, 32, 0, 0, out.data());
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaErrorLaunchFailure);
  CHECK_MSG(contains(cudaGetErrorString(e), "not in the mask"), cudaGetErrorString(e));
}

// A missing barrier between writing shared memory and reading a neighbour's slot: thread t
// reads thread t+dir's value before that thread wrote it. The emulation's order shows it
// for dir +1 (increasing order) or dir -1 (KILN_EMU_REVERSE=1).
__global__ void missing_barrier_kernel(int* out, int dir) {
  __shared__ int s[64];
  const int t = threadIdx.x;
  s[t] = -1;
  __syncthreads();
  s[t] = t;
  out[t] = s[(t + dir + 64) % 64];  // a __syncthreads() is missing before this read
}

int stale_reads(int dir) {
  std::vector<int> out(64, 0);
  KILN_LAUNCH(missing_barrier_kernel, 1, 64, 0, 0, out.data(), dir);
  return (int)std::count(out.begin(), out.end(), -1);
}

void test_schedule_order_shows_missing_barriers() {
  const char* saved = getenv("KILN_EMU_REVERSE");
  const std::string restore = saved ? saved : "";
  unsetenv("KILN_EMU_REVERSE");
  const int forward_up = stale_reads(+1), forward_down = stale_reads(-1);
  setenv("KILN_EMU_REVERSE", "1", 1);
  const int reverse_up = stale_reads(+1), reverse_down = stale_reads(-1);
  if (saved) setenv("KILN_EMU_REVERSE", restore.c_str(), 1);
  else unsetenv("KILN_EMU_REVERSE");
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK_MSG(forward_up >= 32, "increasing order shows reads of higher threads: " + std::to_string(forward_up));
  CHECK_MSG(reverse_down >= 32, "decreasing order shows reads of lower threads: " + std::to_string(reverse_down));
  CHECK(forward_down <= 1 && reverse_up <= 1);  // each order hides the other direction
}

// cp.async lands at the wait covering its group: out[t*4 + k] = the first byte of the
// thread's three destinations {A, B, C} (0xff = not landed) after: issue A, commit, issue B,
// commit, issue C (never committed); k=0: before any wait, 1: after wait<1>, 2: after
// wait<0>; 3: C after wait<0>.
__global__ void cp_async_groups_kernel(const unsigned char* src, unsigned char* out) {
  __shared__ __align__(16) unsigned char s[32][3][16];
  const int t = threadIdx.x;
  memset(s[t], 0xff, sizeof s[t]);
  kiln::cp_async16(s[t][0], src);
  kiln::cp_async_commit();
  kiln::cp_async16(s[t][1], src + 16);
  kiln::cp_async_commit();
  kiln::cp_async16(s[t][2], src + 32);
  out[t * 4 + 0] = (unsigned char)(s[t][0][0] & s[t][1][0]);
  kiln::cp_async_wait<1>();
  out[t * 4 + 1] = (unsigned char)(s[t][0][0] | (s[t][1][0] == 0xff ? 0x80 : 0));
  kiln::cp_async_wait<0>();
  out[t * 4 + 2] = s[t][1][0];
  out[t * 4 + 3] = s[t][2][0];
}

void test_cp_async_lands_at_its_wait() {
  alignas(16) unsigned char src[48];
  for (int i = 0; i < 48; ++i) src[i] = (unsigned char)(i + 1);  // first bytes: 1, 17, 33
  std::vector<unsigned char> out(32 * 4, 0);
  KILN_LAUNCH(cp_async_groups_kernel, 1, 32, 0, 0, src, out.data());
  CHECK(cudaGetLastError() == cudaSuccess);
  for (int t = 0; t < 32; ++t) {
    CHECK_MSG(out[t * 4 + 0] == 0xff, "nothing lands before a wait");
    CHECK_MSG(out[t * 4 + 1] == (1 | 0x80), "wait<1> lands the first group only");
    CHECK_MSG(out[t * 4 + 2] == 17, "wait<0> lands the second group");
    CHECK_MSG(out[t * 4 + 3] == 0xff, "an uncommitted copy is not waited for");
  }
}

// A kernel without parameters (KILN_LAUNCH's variadic part empty); it reports through a
// __device__ variable, which is plain host memory here.
__device__ int no_args_count;
__global__ void no_args_kernel() { atomicAdd(&no_args_count, 1); }

void test_kernel_without_arguments() {
  no_args_count = 0;
  KILN_LAUNCH(no_args_kernel, 3, 40, 0, 0);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(no_args_count == 120);
}

#endif  // KILN_EMU

// ---------------------------------------------------------------- launch configuration

__global__ void flag_kernel(int* flag) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *flag = 1;
}

void test_launch_limits() {
  Dev<int> d_flag(1);
  struct Case {
    dim3 grid, block;
    const char* what;
  };
  const Case bad[] = {
      {dim3(1), dim3(1025), "1025 threads"},
      {dim3(1), dim3(32, 33), "32x33 threads"},
      {dim3(1), dim3(1, 1, 65), "blockDim.z 65"},
      {dim3(1), dim3(0), "blockDim.x 0"},
      {dim3(0), dim3(32), "gridDim.x 0"},
      {dim3(1, 65536), dim3(32), "gridDim.y 65536"},
      {dim3(1, 1, 65536), dim3(32), "gridDim.z 65536"},
  };
  for (const Case& c : bad) {
    KILN_LAUNCH(flag_kernel, c.grid, c.block, 0, 0, d_flag.p);
    CHECK_MSG(cudaGetLastError() == cudaErrorInvalidConfiguration, c.what);
    CHECK_MSG(d_flag.get()[0] == 0, std::string("ran anyway: ") + c.what);
    // A configuration error is not a launch failure: synchronize has nothing to report.
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
  }
  KILN_LAUNCH(flag_kernel, dim3(1, 1, 1), dim3(1024), 0, 0, d_flag.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(d_flag.get()[0] == 1);
  cudaMemset(d_flag.p, 0, sizeof(int));
  KILN_LAUNCH(flag_kernel, dim3(1), dim3(4, 4, 64), 0, 0, d_flag.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(d_flag.get()[0] == 1);
}

// ---------------------------------------------------------------- dynamic shared memory

// Each block fills its dynamic shared memory with its index and sums it back after a
// barrier; also reports whether the last word, read before any thread wrote, held the
// emulation's NaN pattern (0xff bytes).
template <int Tag>
__global__ void dynamic_smem_kernel(int* sums, int* poisoned, int words) {
  KILN_DYNAMIC_SHARED(int, s);
  if (threadIdx.x == 0) poisoned[blockIdx.x] = s[words - 1] == -1;
  __syncthreads();
  for (int i = threadIdx.x; i < words; i += blockDim.x) s[i] = blockIdx.x + i;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long sum = 0;
    for (int i = 0; i < words; ++i) sum += s[i];
    sums[blockIdx.x] = (int)(sum % 1000003);
  }
}

// Launches dynamic_smem_kernel<Tag> on 3 blocks with `bytes` of dynamic shared memory; the
// launch's error, and whether every block summed right (and saw the poison, emulated).
template <int Tag>
cudaError_t dynamic_smem_run(size_t bytes, bool* ok) {
  const int words = (int)(bytes / 4);
  Dev<int> d_sums(3, 0xff), d_poisoned(3);
  KILN_LAUNCH((dynamic_smem_kernel<Tag>), 3, 256, bytes, 0, d_sums.p, d_poisoned.p, words);
  const cudaError_t e = cudaGetLastError();
  const std::vector<int> sums = d_sums.get(), poisoned = d_poisoned.get();
  *ok = true;
  for (int b = 0; b < 3; ++b) {
    long long sum = 0;
    for (int i = 0; i < words; ++i) sum += (long long)b + i;
    *ok = *ok && sums[b] == (int)(sum % 1000003) && (!KILN_EMU || poisoned[b] == 1);
  }
  if (e != cudaSuccess) *ok = sums[0] == -1;  // a refused launch ran nothing
  return e;
}

void test_dynamic_shared_memory() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  const size_t optin = prop.sharedMemPerBlockOptin;
  CHECK(optin >= 100 * 1024);
  if (KILN_EMU) CHECK(optin == 227 * 1024);  // sm_90's limit
  bool ok = false;
  // 48 KiB: allowed without opting in; one byte more is refused and runs nothing.
  CHECK(dynamic_smem_run<0>(48 * 1024, &ok) == cudaSuccess);
  CHECK(ok);
  CHECK(dynamic_smem_run<1>(48 * 1024 + 1, &ok) == cudaErrorInvalidValue);
  CHECK(ok);
  // After opting in to 100 KiB for that kernel (only that one), it runs.
  CHECK(cudaFuncSetAttribute(dynamic_smem_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) == cudaSuccess);
  CHECK(dynamic_smem_run<1>(100 * 1024, &ok) == cudaSuccess);
  CHECK(ok);
  CHECK(dynamic_smem_run<2>(100 * 1024, &ok) == cudaErrorInvalidValue);
  CHECK(ok);
  // The device's opt-in limit is the most the attribute accepts.
  CHECK(cudaFuncSetAttribute(dynamic_smem_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)optin + 1) == cudaErrorInvalidValue);
  cudaGetLastError();  // a refused attribute is also the thread's last error on a GPU
  CHECK(cudaFuncSetAttribute(dynamic_smem_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)optin) == cudaSuccess);
  CHECK(dynamic_smem_run<2>(optin, &ok) == cudaSuccess);
  CHECK(ok);
}

// ---------------------------------------------------------------- tensor-core intrinsics

// An 8x8 b16 matrix m (0..3) with element (r, c) = 1000*m + 10*r + c, its rows 16 bytes
// apart inside a padded shared tile (row stride 24 elements = 48 bytes, 16-byte aligned).
constexpr int kStride = 24;
__host__ __device__ inline uint16_t ld_value(int m, int r, int c) { return (uint16_t)(1000 * m + 10 * r + c); }

template <int X, bool Trans>
__global__ void ldmatrix_kernel(uint32_t* out) {
  __shared__ __align__(16) uint16_t tile[4 * 8 * kStride];
  for (int i = threadIdx.x; i < 4 * 8 * 8; i += blockDim.x) {
    const int m = i / 64, r = i / 8 % 8, c = i % 8;
    tile[(m * 8 + r) * kStride + c] = ld_value(m, r, c);
  }
  __syncthreads();
  const int lane = threadIdx.x;
  // Lane l points at row l%8 of matrix l/8 (for x2 lanes 16-31 are ignored: give them junk
  // that is still aligned).
  const uint16_t* row = (X == 2 && lane >= 16) ? tile : tile + ((lane / 8) * 8 + lane % 8) * kStride;
  uint32_t r[X];
  if constexpr (X == 4) {
    if constexpr (Trans) kiln::ldmatrix_x4_trans(r, row);
    else kiln::ldmatrix_x4(r, row);
  } else {
    if constexpr (Trans) kiln::ldmatrix_x2_trans(r, row);
    else kiln::ldmatrix_x2(r, row);
  }
  for (int i = 0; i < X; ++i) out[lane * 4 + i] = r[i];
}

template <int X, bool Trans>
void check_ldmatrix() {
  Dev<uint32_t> d_out(32 * 4, 0xee);
  KILN_LAUNCH((ldmatrix_kernel<X, Trans>), 1, 32, 0, 0, d_out.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<uint32_t> out = d_out.get();
  // PTX ISA, ldmatrix: lane l holds, of matrix i, row l/4 and columns 2*(l%4), 2*(l%4)+1
  // (low half first); .trans: the same positions of the transposed matrix.
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < X; ++i) {
      const int g = l / 4, t = l % 4;
      const uint16_t lo = Trans ? ld_value(i, 2 * t, g) : ld_value(i, g, 2 * t);
      const uint16_t hi = Trans ? ld_value(i, 2 * t + 1, g) : ld_value(i, g, 2 * t + 1);
      CHECK_MSG(out[l * 4 + i] == ((uint32_t)lo | (uint32_t)hi << 16),
                "x" + std::to_string(X) + (Trans ? ".trans" : "") + " lane " + std::to_string(l) + " matrix " + std::to_string(i));
    }
}

void test_ldmatrix() {
  check_ldmatrix<4, false>();
  check_ldmatrix<4, true>();
  check_ldmatrix<2, false>();
  check_ldmatrix<2, true>();
}

#if KILN_EMU
__global__ void ldmatrix_misaligned_kernel(uint32_t* out) {
  __shared__ __align__(16) uint16_t tile[8 * 16 + 8];
  uint32_t r[2];
  kiln::ldmatrix_x2(r, tile + (threadIdx.x % 8) * 16 + 1);  // 2 bytes off
  out[threadIdx.x] = r[0];
}

void test_ldmatrix_misaligned() {
  Dev<uint32_t> d_out(32);
  KILN_LAUNCH(ldmatrix_misaligned_kernel, 1, 32, 0, 0, d_out.p);
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaErrorLaunchFailure);
  CHECK_MSG(contains(cudaGetErrorString(e), "aligned"), cudaGetErrorString(e));
}
#endif  // KILN_EMU

// One mma from fragments built on the host per the PTX layouts (no ldmatrix involved).
__global__ void mma_kernel(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  const int l = threadIdx.x;
  const uint32_t af[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]};
  const uint32_t bf[2] = {b[2 * l], b[2 * l + 1]};
  const float cf[4] = {c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]};
  float df[4];
  kiln::mma_m16n8k16_bf16(df, af, bf, cf);
  for (int i = 0; i < 4; ++i) d[4 * l + i] = df[i];
}

void test_mma() {
  // A 16x16 and B 16x8 of small integers (exact in bf16 and in f32 sums), C nonzero.
  float A[16][16], B[16][8], C[16][8];
  for (int i = 0; i < 16; ++i)
    for (int k = 0; k < 16; ++k) A[i][k] = (float)((i * 3 + k * 5) % 7 - 3);
  for (int k = 0; k < 16; ++k)
    for (int j = 0; j < 8; ++j) B[k][j] = (float)((k * 2 + j * 7) % 5 - 2) * (j == 5 ? 0.5f : 1.0f);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) C[i][j] = (float)(i * 8 + j) * 0.25f;
  auto pack = [](float lo, float hi) { return (uint32_t)bf16(lo) | (uint32_t)bf16(hi) << 16; };
  std::vector<uint32_t> a(32 * 4), b(32 * 2);
  std::vector<float> c(32 * 4), d(32 * 4, NAN);
  // PTX ISA 9.7.14.5.8, m16n8k16 .bf16: g = lane>>2, t = lane%4.
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    a[4 * l + 0] = pack(A[g][2 * t], A[g][2 * t + 1]);
    a[4 * l + 1] = pack(A[g + 8][2 * t], A[g + 8][2 * t + 1]);
    a[4 * l + 2] = pack(A[g][2 * t + 8], A[g][2 * t + 9]);
    a[4 * l + 3] = pack(A[g + 8][2 * t + 8], A[g + 8][2 * t + 9]);
    b[2 * l + 0] = pack(B[2 * t][g], B[2 * t + 1][g]);
    b[2 * l + 1] = pack(B[2 * t + 8][g], B[2 * t + 9][g]);
    c[4 * l + 0] = C[g][2 * t];
    c[4 * l + 1] = C[g][2 * t + 1];
    c[4 * l + 2] = C[g + 8][2 * t];
    c[4 * l + 3] = C[g + 8][2 * t + 1];
  }
  Dev<uint32_t> d_a(a), d_b(b);
  Dev<float> d_c(c), d_d(32 * 4, 0xff);
  KILN_LAUNCH(mma_kernel, 1, 32, 0, 0, d_a.p, d_b.p, d_c.p, d_d.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  d = d_d.get();
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    for (int h = 0; h < 2; ++h)
      for (int half = 0; half < 2; ++half) {
        const int i = g + 8 * half, j = 2 * t + h;
        float expect = C[i][j];
        for (int k = 0; k < 16; ++k) expect += A[i][k] * B[k][j];
        CHECK_MSG(d[4 * l + 2 * half + h] == expect, "D[" + std::to_string(i) + "][" + std::to_string(j) + "]");
      }
  }
}

void test_tile_gemm() {
  // bf16 values with few mantissa bits so every product and sum is exact in f32.
  std::vector<uint16_t> a(32 * 32), b(32 * 16);
  std::vector<float> af(32 * 32), bf(32 * 16), c(32 * 16, NAN);
  for (int i = 0; i < 32 * 32; ++i) af[i] = (float)((i * 7 + 3) % 11 - 5) * 0.125f;
  for (int i = 0; i < 32 * 16; ++i) bf[i] = (float)((i * 5 + 1) % 9 - 4) * 0.5f;
  for (int i = 0; i < 32 * 32; ++i) a[i] = bf16(af[i]);
  for (int i = 0; i < 32 * 16; ++i) b[i] = bf16(bf[i]);
  kiln_emu_test::tile_gemm(a.data(), b.data(), c.data());
  CHECK(cudaGetLastError() == cudaSuccess);
  for (int i = 0; i < 32; ++i)
    for (int j = 0; j < 16; ++j) {
      float expect = 0.0f;
      for (int k = 0; k < 32; ++k) expect += af[i * 32 + k] * bf[k * 16 + j];
      CHECK_MSG(c[i * 16 + j] == expect, "C[" + std::to_string(i) + "][" + std::to_string(j) + "] = " + std::to_string(c[i * 16 + j]) +
                                             ", expected " + std::to_string(expect));
    }
}

// cp.async: thread t copies 16 bytes with src_bytes = t % 17 into shared memory that holds
// 0xff, then copies the shared row out.
__global__ void cp_async_kernel(const unsigned char* src, unsigned char* dst) {
  __shared__ __align__(16) unsigned char s[17 * 16];
  const int t = threadIdx.x;
  for (int i = 0; i < 16; ++i) s[t * 16 + i] = 0xff;
  kiln::cp_async16(s + t * 16, src + t * 16, t % 17);
  kiln::cp_async_commit();
  kiln::cp_async_wait<0>();
  __syncthreads();
  for (int i = 0; i < 16; ++i) dst[t * 16 + i] = s[t * 16 + i];
}

void test_cp_async_zero_fill() {
  std::vector<unsigned char> src(17 * 16);
  for (int i = 0; i < 17 * 16; ++i) src[i] = (unsigned char)(i % 251 + 1);
  Dev<unsigned char> d_src(src), d_dst(17 * 16, 0xee);
  KILN_LAUNCH(cp_async_kernel, 1, 17, 0, 0, d_src.p, d_dst.p);
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<unsigned char> dst = d_dst.get();
  for (int t = 0; t < 17; ++t)
    for (int i = 0; i < 16; ++i) CHECK(dst[t * 16 + i] == (i < t % 17 ? src[t * 16 + i] : 0));
}

// ---------------------------------------------------------------- kernels.cu (both compilers)

float mix_host(float f) {
  return tanhf(f) + sqrtf(fabsf(f)) * (1.0f / sqrtf(1.0f + f * f)) + expf(f) / (1.0f + expf(f)) - logf(1.0f + fabsf(f)) + logf(2.0f) +
         powf(fabsf(f), 1.5f);
}

void test_constructs_kernel() {
  // KILN_LAUNCH((constructs_kernel<float, 4>), ...) inside: the templated, parenthesised form.
  const int n = 1001, grid = 3, block = 96;
  std::vector<float> x(n), y(n, NAN);
  for (int i = 0; i < n; ++i) x[i] = (i % 5 == 0) ? -(float)(i % 13) * 0.25f : (float)((i * 7) % 17) * 0.125f - 0.5f;
  std::vector<kiln_emu_test::ConstructsBlock> blocks(grid);
  unsigned totals[2] = {9, 9};
  kiln_emu_test::constructs(x.data(), y.data(), blocks.data(), totals, n, grid, block);
  CHECK(cudaGetLastError() == cudaSuccess);
  // The GPU's __expf, __logf and __fdividef are approximate (the emulation's are not).
  for (int i = 0; i < n; ++i) CHECK_MSG(std::fabs(y[i] - mix_host(x[i])) <= 2e-5f * (1.0f + std::fabs(y[i])), "y[" + std::to_string(i) + "]");
  unsigned lanes_total = 0;
  for (int b = 0; b < grid; ++b) {
    double sum = 0.0;
    float mx = -INFINITY;
    int voting = 0, warps_any = 0, warps_all = 0;
    for (int w = 0; w < block / 32; ++w) {
      int lanes = 0;
      for (int l = 0; l < 32; ++l) {
        const int t = 32 * w + l;
        bool positive = false;
        for (int base = (b * block + t) * 4; base < n; base += grid * block * 4)
          for (int v = 0; v < 4 && base + v < n; ++v) {
            sum += y[base + v];
            mx = std::max(mx, y[base + v]);
            positive |= x[base + v] > 0.0f;
          }
        lanes += positive;
      }
      voting += lanes;
      warps_any += lanes > 0;
      warps_all += lanes == 32;
    }
    const kiln_emu_test::ConstructsBlock& r = blocks[b];
    CHECK_MSG(std::fabs(r.stats.x - sum) <= 1e-4 * (1.0 + std::fabs(sum)), "block sum " + std::to_string(b));
    CHECK_MSG(r.stats.y == mx, "block max " + std::to_string(b));
    CHECK(r.votes.x == 0);  // every warp's scan ended at its tree sum's total
    CHECK(r.votes.y == voting);
    CHECK(r.votes.z == warps_any);
    CHECK(r.votes.w == warps_all);
    CHECK(r.where.x == (unsigned)b && r.where.y == (unsigned)block);
    lanes_total += voting;
  }
  CHECK(totals[0] == (unsigned)grid);
  CHECK(totals[1] == lanes_total);
}

void test_host_runtime() {
  const kiln_emu_test::HostInfo info = kiln_emu_test::host_runtime();
  CHECK(info.count >= 1);
  if (KILN_EMU) {
    CHECK(info.count == 1);
    CHECK(std::string(info.name) == "SIMT emulation (CPU)");
    CHECK(info.major == 8);
  }
  CHECK(info.total_bytes > 0 && info.free_bytes <= info.total_bytes);
  CHECK(info.zeros);
  CHECK(info.elapsed_ms >= 0.0f);
  CHECK(info.peek == cudaSuccess && info.last == cudaSuccess);
  CHECK(std::string(info.success_text) == "no error");
  if (info.count == 1) CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaSetDevice(0) == cudaSuccess);
  int* p = nullptr;
  CHECK(cudaMalloc(&p, 100) == cudaSuccess);
  CHECK(reinterpret_cast<uintptr_t>(p) % 256 == 0);
  CHECK(cudaMemcpy(p, p, 4, (cudaMemcpyKind)7) == cudaErrorInvalidMemcpyDirection);
  CHECK(cudaGetLastError() == cudaErrorInvalidMemcpyDirection);
  CHECK(cudaFree(p) == cudaSuccess);
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)) == "invalid configuration argument");
}

// ---------------------------------------------------------------- threads and speed

// Launches from several host threads, one at a time or at once, all complete correctly
// (launches are serialised: `__shared__` is one static per kernel).
void test_launches_from_several_threads() {
  Dev<float> in(std::vector<float>(2048, 1.0f));
  std::vector<std::vector<float>> outs(4);
  std::vector<cudaError_t> errors(4, cudaErrorUnknown);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      Dev<float> out(2);
      for (int rep = 0; rep < 5; ++rep) KILN_LAUNCH(block_sum_kernel, 2, 256 + 64 * k, 0, 0, in.p, out.p, 2048);
      cudaDeviceSynchronize();
      errors[k] = cudaGetLastError();  // per host thread, as in CUDA
      outs[k] = out.get();
    });
  for (auto& t : threads) t.join();
  for (int k = 0; k < 4; ++k) {
    CHECK(errors[k] == cudaSuccess);
    CHECK(outs[k][0] + outs[k][1] == 2048.0f);
  }
}

__global__ void many_barriers_kernel(int* out, int rounds) {
  __shared__ int s[1024];
  const int t = threadIdx.x;
  s[t] = t;
  for (int r = 0; r < rounds; ++r) {
    __syncthreads();
    const int v = s[(t + 1) % blockDim.x];
    __syncthreads();
    s[t] = v;
  }
  __syncthreads();
  out[t] = s[t];
}

void test_many_barriers() {
  // 1024 threads x 2000 barriers: correct (a rotation by `rounds`) and quick.
  const int rounds = 1000;
  Dev<int> d_out(1024, 0xff);
  const auto t0 = std::chrono::steady_clock::now();
  KILN_LAUNCH(many_barriers_kernel, 1, 1024, 0, 0, d_out.p, rounds);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(cudaGetLastError() == cudaSuccess);
  const std::vector<int> out = d_out.get();
  for (int t = 0; t < 1024; ++t) CHECK(out[t] == (t + rounds) % 1024);
  printf("  (%d barrier crossings of 1024 threads: %.3f s, %.0f ns per thread switch)\n", 2 * rounds + 1, seconds,
         seconds * 1e9 / (1024.0 * (2 * rounds + 1)));
  CHECK_MSG(seconds < 20.0, "too slow: " + std::to_string(seconds) + " s");
}

}  // namespace

int main() {
#if !KILN_EMU
  // Built with nvcc: without a device there is nothing to compare with (77: "skipped").
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    printf("SKIP no CUDA device: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  printf("on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
#endif
  run("block reduction with shared memory and __syncthreads", test_block_reduction);
  run("threadIdx/blockIdx/blockDim/gridDim/warpSize in 3-D", test_builtin_variables);
  run("kernel parameters are per-thread copies", test_parameters_are_per_thread);
  run("threads that exit early no longer count at barriers", test_early_exit_before_barrier);
  run("__shfl_xor/down/up/_sync on int, unsigned, float, widths 32..2", test_shuffles);
  run("shuffle with a partial mask", test_shuffle_with_partial_mask);
  run("__ballot_sync, __any_sync, __all_sync", test_votes);
#if KILN_EMU
  run("divergent __syncthreads: deadlock reported, not hung", test_deadlock_is_reported);
  run("cudaStreamSynchronize reports a launch failure", test_stream_synchronize_reports_failure);
  run("shuffle naming an exited lane is an error", test_exited_lane_in_mask);
  run("full mask in a partial warp is an error", test_partial_warp_full_mask);
  run("mismatched collectives in one mask are an error", test_mismatched_collectives);
  run("shuffle from a lane outside the mask is an error", test_shuffle_source_outside_mask);
  run("the thread order (and KILN_EMU_REVERSE) shows missing barriers", test_schedule_order_shows_missing_barriers);
  run("a kernel without parameters", test_kernel_without_arguments);
  run("cp.async lands at the wait that covers its group", test_cp_async_lands_at_its_wait);
#endif
  run("launch limits: invalid configurations refused", test_launch_limits);
  run("dynamic shared memory: 48 KiB, opt-in with cudaFuncSetAttribute", test_dynamic_shared_memory);
  run("ldmatrix x4/x2, plain and .trans, per the PTX layout", test_ldmatrix);
#if KILN_EMU
  run("ldmatrix on a misaligned row is an error", test_ldmatrix_misaligned);
#endif
  run("mma.sync m16n8k16 bf16 on known matrices", test_mma);
  run("32x16x32 GEMM from cp.async + ldmatrix + mma", test_tile_gemm);
  run("cp.async with partial zero-fill", test_cp_async_zero_fill);
  run("every README construct, KILN_LAUNCH((k<float, 4>), ...)", test_constructs_kernel);
  run("host runtime", test_host_runtime);
  run("launches from several host threads", test_launches_from_several_threads);
  run("1024 threads through 2001 barriers", test_many_barriers);
  printf("%d failed\n", failures);
  return failures;
}
