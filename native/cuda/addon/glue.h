// Shared by the addon's files: reading JavaScript arguments into the C++ types of
// model/gpt.h and kernels/kernels.h, with errors that name the argument at fault.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "model/gpt.h"

namespace kiln::addon {

// A JavaScript Error (TypeError for a wrong type) thrown as a C++ exception, which
// node-addon-api turns back into a JS exception at the callback's boundary.
[[noreturn]] void throw_type(Napi::Env env, const std::string& message);
[[noreturn]] void throw_error(Napi::Env env, const std::string& message);

// Named field of an options object, checked: a positive integer, a finite number, a boolean.
int positive_int(const Napi::Object& o, const char* object, const char* field);
double finite_number(const Napi::Object& o, const char* object, const char* field);
bool boolean(const Napi::Object& o, const char* object, const char* field);
// Argument `i` of a call, checked.
Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* what);
int int_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int min);

ModelDims parse_dims(const Napi::Value& v);
ModelOptions parse_options(const Napi::Value& v);
std::vector<TensorSlot> parse_layout(const Napi::Value& v);

// Exposes `Model` on exports (addon/model.cpp).
void init_model(Napi::Env env, Napi::Object exports);

}  // namespace kiln::addon
