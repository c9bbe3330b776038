// The machinery behind entries/<op>.cu: argument checks, the registry that
// addon.kernel(name, ...) looks entries up in, and host <-> device copies.
#include <algorithm>
#include "entry.h"

#include <cmath>
#include <string>

namespace kiln::entry {

namespace {
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::F32: return "a Float32Array";
    case Kind::I32: return "an Int32Array";
    case Kind::U32: return "a Uint32Array";
  }
  return "?";
}

// Function-local so that registrars in other translation units, which run during static
// initialisation in no defined order, always find it constructed.
std::map<std::string, Fn>& registry() {
  static std::map<std::string, Fn> r;
  return r;
}
}  // namespace

static void* typed(std::vector<HostArray>& arrays, size_t i, Kind want) {
  if (i >= arrays.size())
    throw std::invalid_argument("array " + std::to_string(i) + " is missing (" + std::to_string(arrays.size()) + " given, " +
                                kind_name(want) + " expected)");
  if (arrays[i].kind != want)
    throw std::invalid_argument("array " + std::to_string(i) + " must be " + kind_name(want) + ", not " + kind_name(arrays[i].kind));
  return arrays[i].data;
}

float* Args::f32(size_t i) { return static_cast<float*>(typed(arrays, i, Kind::F32)); }
int32_t* Args::i32(size_t i) { return static_cast<int32_t*>(typed(arrays, i, Kind::I32)); }
uint32_t* Args::u32(size_t i) { return static_cast<uint32_t*>(typed(arrays, i, Kind::U32)); }

size_t Args::len(size_t i) const {
  if (i >= arrays.size())
    throw std::invalid_argument("array " + std::to_string(i) + " is missing (" + std::to_string(arrays.size()) + " given)");
  return arrays[i].length;
}

double Args::num(size_t i) const {
  if (i >= nums.size())
    throw std::invalid_argument("number " + std::to_string(i) + " is missing (" + std::to_string(nums.size()) + " given)");
  return nums[i];
}

int Args::integer(size_t i) const {
  const double v = num(i);
  if (!(v == std::floor(v)) || v < -2147483648.0 || v > 2147483647.0)
    throw std::invalid_argument("number " + std::to_string(i) + " must be a 32-bit integer, not " + std::to_string(v));
  return static_cast<int>(v);
}

Dtype Args::dtype(size_t i) const {
  const double v = num(i);
  if (v == 0) return Dtype::F32;
  if (v == 1) return Dtype::BF16;
  throw std::invalid_argument("number " + std::to_string(i) + " must be a dtype (0 f32, 1 bf16), not " + std::to_string(v));
}

Registrar::Registrar(const char* name, Fn fn) { registry()[name] = fn; }
const std::map<std::string, Fn>& all() { return registry(); }

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

void sync(const char* what) {
  check(cudaDeviceSynchronize(), what);
  check(cudaGetLastError(), what);
}

template <class T>
DeviceArray<T>::DeviceArray(size_t n, const T* host) : n_(n) {
  // At least one element, so that an empty array is still a valid pointer to pass.
  const size_t bytes = (n ? n : 1) * sizeof(T);
  check(cudaMalloc(reinterpret_cast<void**>(&ptr_), bytes), "cudaMalloc");
  cudaError_t err = host && n ? cudaMemcpy(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice) : cudaMemset(ptr_, 0, bytes);
  if (err != cudaSuccess) {
    cudaFree(ptr_);
    check(err, "uploading a test array");
  }
}

template <class T>
DeviceArray<T>::~DeviceArray() {
  cudaFree(ptr_);
}

template <class T>
void DeviceArray<T>::download(T* host) const {
  if (n_) check(cudaMemcpy(host, ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "downloading a test array");
}

template class DeviceArray<float>;
template class DeviceArray<int32_t>;
template class DeviceArray<uint32_t>;
template class DeviceArray<uint16_t>;

ActArray::ActArray(Dtype dt, size_t n, const float* host) : dt_(dt), n_(n) {
  const size_t bytes = (n ? n : 1) * dtype_size(dt);
  check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  cudaError_t err;
  if (!host || !n) {
    err = cudaMemset(ptr_, 0, bytes);
  } else if (dt == Dtype::F32) {
    err = cudaMemcpy(ptr_, host, n * 4, cudaMemcpyHostToDevice);
  } else {
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; i++) bits[i] = f32_to_bf16_bits(host[i]);
    err = cudaMemcpy(ptr_, bits.data(), n * 2, cudaMemcpyHostToDevice);
  }
  if (err != cudaSuccess) {
    cudaFree(ptr_);
    check(err, "uploading a test array");
  }
}

ActArray::~ActArray() { cudaFree(ptr_); }

void ActArray::download(float* host) const {
  if (!n_) return;
  if (dt_ == Dtype::F32) {
    check(cudaMemcpy(host, ptr_, n_ * 4, cudaMemcpyDeviceToHost), "downloading a test array");
    return;
  }
  std::vector<uint16_t> bits(n_);
  check(cudaMemcpy(bits.data(), ptr_, n_ * 2, cudaMemcpyDeviceToHost), "downloading a test array");
  for (size_t i = 0; i < n_; i++) host[i] = bf16_bits_to_f32(bits[i]);
}

void expect_len(const Args& args, size_t i, size_t n, const char* what) {
  if (args.len(i) != n)
    throw std::invalid_argument(std::string(what) + " must hold " + std::to_string(n) + " elements, not " + std::to_string(args.len(i)));
}

bool flag(const Args& args, size_t i) { return args.nums.size() > i && args.integer(i) != 0; }

uint32_t u32_num(const Args& args, size_t i, const char* what) {
  const double v = args.num(i);
  if (!(v >= 0 && v <= 4294967295.0 && v == std::floor(v)))
    throw std::invalid_argument(std::string(what) + " must be a 32-bit unsigned integer");
  return (uint32_t)v;
}

static std::vector<float> padded(const float* host, size_t n, size_t shift) {
  std::vector<float> v(n + shift, 0.0f);
  std::copy(host, host + n, v.begin() + shift);
  return v;
}

Placed::Placed(Dtype dt, size_t n, size_t shift, const float* host)
    : arr_(dt, n + shift, host ? padded(host, n, shift).data() : nullptr), dt_(dt), n_(n), shift_(shift) {}

void Placed::download(float* host) const {
  std::vector<float> v(n_ + shift_);
  arr_.download(v.data());
  std::copy(v.begin() + shift_, v.end(), host);
}

}  // namespace kiln::entry
