// The addon's module: which build this is, the devices the CUDA runtime sees, the kernel
// entry points tests call (entries/), the memory plan, and the Model class (model.cpp).
// The JavaScript surface is native/cuda/README.md's; src/backends/cuda/addon.ts types it.
#include <napi.h>

#include <cmath>
#include <string>

#include "entries/entry.h"
#include "glue.h"

namespace kiln::addon {

void throw_type(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
void throw_error(Napi::Env env, const std::string& message) { throw Napi::Error::New(env, message); }

static Napi::Value field(const Napi::Object& o, const char* object, const char* name) {
  if (!o.Has(name)) throw_type(o.Env(), std::string(object) + "." + name + " is missing");
  return o.Get(name);
}

double finite_number(const Napi::Object& o, const char* object, const char* name) {
  Napi::Value v = field(o, object, name);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw_type(o.Env(), std::string(object) + "." + name + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

int positive_int(const Napi::Object& o, const char* object, const char* name) {
  Napi::Value v = field(o, object, name);
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 1 && d <= 2147483647.0 && d == std::floor(d)))
    throw_type(o.Env(), std::string(object) + "." + name + " must be a positive integer");
  return static_cast<int>(d);
}

bool boolean(const Napi::Object& o, const char* object, const char* name) {
  Napi::Value v = field(o, object, name);
  if (!v.IsBoolean()) throw_type(o.Env(), std::string(object) + "." + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) throw_type(info.Env(), std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int min) {
  const double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= min && d <= 2147483647.0 && d == std::floor(d)))
    throw_type(info.Env(), std::string(what) + " must be an integer >= " + std::to_string(min));
  return static_cast<int>(d);
}

ModelDims parse_dims(const Napi::Value& v) {
  if (!v.IsObject()) throw_type(v.Env(), "dims must be an object {vocab, block, layers, heads, embd}");
  Napi::Object o = v.As<Napi::Object>();
  return ModelDims{positive_int(o, "dims", "vocab"), positive_int(o, "dims", "block"), positive_int(o, "dims", "layers"),
                   positive_int(o, "dims", "heads"), positive_int(o, "dims", "embd")};
}

static GemmImpl parse_gemm(Napi::Env env, const std::string& s) {
  if (s == "auto") return GemmImpl::Auto;
  if (s == "simt") return GemmImpl::Simt;
  if (s == "tensor-core") return GemmImpl::TensorCore;
  if (s == "cublaslt") return GemmImpl::CublasLt;
  throw_type(env, "options.gemm must be auto, simt, tensor-core or cublaslt, not " + s);
}

ModelOptions parse_options(const Napi::Value& v) {
  if (!v.IsObject()) throw_type(v.Env(), "options must be an object {dtype, maxBatch, recompute, gemm}");
  Napi::Object o = v.As<Napi::Object>();
  ModelOptions opt;
  Napi::Value dtype = field(o, "options", "dtype");
  const std::string dt = dtype.IsString() ? dtype.As<Napi::String>().Utf8Value() : "";
  if (dt == "f32") opt.dtype = Dtype::F32;
  else if (dt == "bf16") opt.dtype = Dtype::BF16;
  else throw_type(o.Env(), "options.dtype must be 'f32' or 'bf16'");
  opt.max_batch = positive_int(o, "options", "maxBatch");
  opt.recompute = boolean(o, "options", "recompute");
  Napi::Value gemm = field(o, "options", "gemm");
  if (!gemm.IsString()) throw_type(o.Env(), "options.gemm must be a string");
  opt.gemm = parse_gemm(o.Env(), gemm.As<Napi::String>().Utf8Value());
  if (opt.gemm != GemmImpl::Auto && !gemm_available(opt.gemm))
    throw_error(o.Env(), "options.gemm: " + gemm.As<Napi::String>().Utf8Value() + " is not in this build (see gemmImpls())");
  return opt;
}

std::vector<TensorSlot> parse_layout(const Napi::Value& v) {
  if (!v.IsArray()) throw_type(v.Env(), "layout must be an array of {name, offset, size, decay}");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorSlot> slots;
  slots.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    const std::string what = "layout[" + std::to_string(i) + "]";
    if (!e.IsObject()) throw_type(v.Env(), what + " must be an object");
    Napi::Object o = e.As<Napi::Object>();
    Napi::Value name = field(o, what.c_str(), "name");
    if (!name.IsString()) throw_type(v.Env(), what + ".name must be a string");
    const double offset = finite_number(o, what.c_str(), "offset");
    const double size = finite_number(o, what.c_str(), "size");
    if (offset < 0 || size < 1 || offset != std::floor(offset) || size != std::floor(size))
      throw_type(v.Env(), what + ": offset must be an integer >= 0 and size >= 1");
    slots.push_back(TensorSlot{name.As<Napi::String>().Utf8Value(), static_cast<size_t>(offset), static_cast<size_t>(size),
                               boolean(o, what.c_str(), "decay")});
  }
  return slots;
}

namespace {

Napi::Value devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#if !KILN_EMU
  // What a "driver version is insufficient" error means on this machine: no driver at all
  // (0), or one older than the runtime this addon was built with.
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  out.Set("driverVersion", driver);
  out.Set("runtimeVersion", runtime);
#endif
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // No driver or no GPU: say what the runtime said, and leave no sticky error behind.
    cudaGetLastError();
    out.Set("count", 0);
    out.Set("error", std::string(cudaGetErrorString(err)));
    return out;
  }
  out.Set("count", count);
  if (count > 0) {
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, 0);
    if (err != cudaSuccess) {
      cudaGetLastError();
      out.Set("error", std::string(cudaGetErrorString(err)));
      return out;
    }
    out.Set("name", std::string(prop.name));
    out.Set("totalMemory", static_cast<double>(prop.totalGlobalMem));
    out.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
  }
  return out;
}

Napi::Value gemm_impls(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  const std::pair<GemmImpl, const char*> impls[] = {
      {GemmImpl::Simt, "simt"}, {GemmImpl::TensorCore, "tensor-core"}, {GemmImpl::CublasLt, "cublaslt"}};
  uint32_t n = 0;
  for (const auto& [impl, name] : impls)
    if (gemm_available(impl)) out.Set(n++, name);
  return out;
}

Napi::Value kernel_names(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (const auto& entry : entry::all()) out.Set(n++, entry.first);
  return out;
}

// kernel(name, arrays, nums): runs on this thread. The arrays are handed over by pointer,
// so what the entry writes back lands in the caller's typed arrays.
Napi::Value kernel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray())
    throw_type(env, "kernel(name: string, arrays: TypedArray[], nums: number[])");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  const auto& entries = entry::all();
  auto found = entries.find(name);
  if (found == entries.end()) {
    std::string known;
    for (const auto& e : entries) known += (known.empty() ? "" : ", ") + e.first;
    throw_error(env, "no kernel entry point named '" + name + "' (this build has: " + (known.empty() ? "none" : known) + ")");
  }
  entry::Args args;
  Napi::Array arrays = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < arrays.Length(); i++) {
    Napi::Value a = arrays.Get(i);
    if (!a.IsTypedArray()) throw_type(env, name + ": array " + std::to_string(i) + " must be a Float32Array, Int32Array or Uint32Array");
    Napi::TypedArray t = a.As<Napi::TypedArray>();
    entry::Kind kind;
    switch (t.TypedArrayType()) {
      case napi_float32_array: kind = entry::Kind::F32; break;
      case napi_int32_array: kind = entry::Kind::I32; break;
      case napi_uint32_array: kind = entry::Kind::U32; break;
      default: throw_type(env, name + ": array " + std::to_string(i) + " must be a Float32Array, Int32Array or Uint32Array");
    }
    auto* base = static_cast<uint8_t*>(t.ArrayBuffer().Data());
    args.arrays.push_back(entry::HostArray{base + t.ByteOffset(), t.ElementLength(), kind});
  }
  Napi::Array nums = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < nums.Length(); i++) {
    Napi::Value n = nums.Get(i);
    if (!n.IsNumber()) throw_type(env, name + ": nums[" + std::to_string(i) + "] must be a number");
    args.nums.push_back(n.As<Napi::Number>().DoubleValue());
  }
  try {
    found->second(args);
  } catch (const std::exception& e) {
    throw_error(env, name + ": " + e.what());
  }
  return env.Undefined();
}

Napi::Value plan_bytes(const Napi::CallbackInfo& info) {
  if (info.Length() < 2) throw_type(info.Env(), "planBytes(dims, options)");
  return Napi::Number::New(info.Env(), static_cast<double>(GptModel::plan_bytes(parse_dims(info[0]), parse_options(info[1]))));
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("flavour", Napi::String::New(env, KILN_EMU ? "emulation" : "cuda"));
  exports.Set("devices", Napi::Function::New(env, devices, "devices"));
  exports.Set("gemmImpls", Napi::Function::New(env, gemm_impls, "gemmImpls"));
  exports.Set("kernelNames", Napi::Function::New(env, kernel_names, "kernelNames"));
  exports.Set("kernel", Napi::Function::New(env, kernel, "kernel"));
  exports.Set("planBytes", Napi::Function::New(env, plan_bytes, "planBytes"));
  init_model(env, exports);
  return exports;
}

}  // namespace
}  // namespace kiln::addon

// NODE_API_MODULE pastes the function's name into an identifier: it must be unqualified.
static Napi::Object kiln_addon_init(Napi::Env env, Napi::Object exports) { return kiln::addon::init(env, exports); }
NODE_API_MODULE(KILN_ADDON_NAME, kiln_addon_init)
