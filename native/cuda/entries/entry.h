// Test entry points: each op's kernels run on host arrays handed over from JavaScript, so
// tests/cuda/*.test.ts can compare them with src/reference on the same inputs, on a GPU or
// on the SIMT emulation. JS calls addon.kernel(name, arrays, nums): typed arrays (in and
// out, written back in place) and numbers, in the order each entry documents.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>
#include "../kernels/kernels.h"

namespace kiln::entry {

enum class Kind { F32, I32, U32 };
struct HostArray {
  void* data;
  size_t length;  // elements
  Kind kind;
};

struct Args {
  std::vector<HostArray> arrays;
  std::vector<double> nums;
  // Typed access with checks: a wrong kind or index throws std::invalid_argument naming it.
  float* f32(size_t i);
  int32_t* i32(size_t i);
  uint32_t* u32(size_t i);
  size_t len(size_t i) const;
  double num(size_t i) const;
  int integer(size_t i) const;
  Dtype dtype(size_t i) const;  // nums[i]: 0 f32, 1 bf16
};

using Fn = void (*)(Args&);
struct Registrar {
  Registrar(const char* name, Fn fn);
};
const std::map<std::string, Fn>& all();

// KILN_ENTRY(encoderForward) { ... uses `args` ... }
#define KILN_ENTRY(name)                                                          \
  static void kiln_entry_##name(::kiln::entry::Args& args);                       \
  static ::kiln::entry::Registrar kiln_entry_reg_##name(#name, kiln_entry_##name); \
  static void kiln_entry_##name(::kiln::entry::Args& args)

// Throws std::runtime_error with cudaGetErrorString's text and `what`.
void check(cudaError_t err, const char* what);
// cudaDeviceSynchronize + cudaGetLastError, checked: call after the launches of an entry.
void sync(const char* what);

// A device copy of a host array: uploaded on construction, downloaded on request, freed
// when it goes out of scope.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n, const T* host = nullptr);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void download(T* host) const;

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// An activation array in the run's dtype: the host's f32 values uploaded as f32 or as bf16
// (rounded to nearest even), and downloaded back to f32.
class ActArray {
 public:
  ActArray(Dtype dt, size_t n, const float* host = nullptr);
  ~ActArray();
  ActArray(const ActArray&) = delete;
  ActArray& operator=(const ActArray&) = delete;
  void* get() const { return ptr_; }
  void download(float* host) const;

 private:
  Dtype dt_;
  size_t n_;
  void* ptr_ = nullptr;
};

// Checks shared by the entry points. Each throws std::invalid_argument naming `what`.
void expect_len(const Args& args, size_t i, size_t n, const char* what);
// An optional trailing number read as a flag: absent means false.
bool flag(const Args& args, size_t i);
// A u32 given as a JavaScript number (a key or seed).
uint32_t u32_num(const Args& args, size_t i, const char* what);

// An activation array placed `shift` elements into its allocation: shift 1 puts it off
// 16-byte alignment, so a launcher must pick its kernel's scalar path.
class Placed {
 public:
  Placed(Dtype dt, size_t n, size_t shift, const float* host);
  void* get() const { return static_cast<char*>(arr_.get()) + shift_ * dtype_size(dt_); }
  void download(float* host) const;

 private:
  ActArray arr_;
  Dtype dt_;
  size_t n_, shift_;
};

}  // namespace kiln::entry
