// N-API helpers shared by the addons that work in place on Float32Arrays
// (cpu-blas.cc, cpu-vector.cc): the views are the TF.js wasm heap's own memory.
// Every bad argument throws an Error with the addon's code, naming the call and the argument.
#pragma once

#include <node_api.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

namespace distlab_native {

// Throws an Error with `code` and returns nullptr (what a callback returns after throwing).
inline napi_value ThrowCoded(napi_env env, const char* code, const std::string& message) {
  napi_throw_error(env, code, message.c_str());
  return nullptr;
}

// A Float32Array argument and the number of floats from `offset` to its end.
inline bool GetFloats(napi_env env, napi_value value, int64_t offset, float** data, int64_t* available) {
  bool isTypedArray = false;
  if (napi_is_typedarray(env, value, &isTypedArray) != napi_ok || !isTypedArray) return false;
  napi_typedarray_type type;
  size_t length = 0;
  void* raw = nullptr;
  if (napi_get_typedarray_info(env, value, &type, &length, &raw, nullptr, nullptr) != napi_ok) return false;
  if (type != napi_float32_array || offset < 0 || static_cast<uint64_t>(offset) > length) return false;
  *data = static_cast<float*>(raw) + offset;
  *available = static_cast<int64_t>(length) - offset;
  return true;
}

// One call's arguments, read in order; each reader throws (naming the call and the argument) and returns false on a bad one.
class Arguments {
 public:
  Arguments(napi_env env, napi_callback_info info, const char* code, std::string call, size_t expected)
      : env_(env), code_(code), call_(std::move(call)) {
    argc_ = kMax;
    napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr);
    if (argc_ != expected) {
      ThrowCoded(env_, code_, call_ + " takes " + std::to_string(expected) + " arguments, got " + std::to_string(argc_));
      ok_ = false;
    }
  }

  bool ok() const { return ok_; }

  // The next argument as a Float32Array; its length in floats to *length.
  float* Floats(const char* name, int64_t* length) {
    float* data = nullptr;
    if (ok_ && !GetFloats(env_, argv_[next_++], 0, &data, length)) Fail(std::string(name) + " must be a Float32Array");
    return ok_ ? data : nullptr;
  }

  // The next argument as a Float32Array of `length` floats (`of` names what fixes that length).
  float* FloatsOf(const char* name, int64_t length, const char* of) {
    int64_t got = 0;
    float* data = Floats(name, &got);
    if (ok_ && got != length) Fail(std::string(name) + " has " + std::to_string(got) + " floats where " + of + " needs " + std::to_string(length));
    return ok_ ? data : nullptr;
  }

  double Number(const char* name) {
    double value = 0;
    if (ok_ && napi_get_value_double(env_, argv_[next_++], &value) != napi_ok) Fail(std::string(name) + " must be a number");
    return value;
  }

  bool Boolean(const char* name) {
    bool value = false;
    if (ok_ && napi_get_value_bool(env_, argv_[next_++], &value) != napi_ok) Fail(std::string(name) + " must be a boolean");
    return value;
  }

  // The next argument as an integer t >= 1 with t * t dividing `length`: the side of [..., t, t].
  int64_t Side(const char* name, int64_t length) {
    const double value = Number(name);
    const int64_t side = static_cast<int64_t>(value);
    if (ok_ && (static_cast<double>(side) != value || side < 1 || length % (side * side) != 0)) {
      Fail(std::string(name) + " must be an integer t >= 1 with t * t dividing the length " + std::to_string(length) + ", got " +
           std::to_string(value));
    }
    return side;
  }

  // Fails unless `width` (the length of `name`) is >= 1 and divides `length` (the length of `of`): a row width.
  void Divides(const char* name, int64_t width, const char* of, int64_t length) {
    if (ok_ && (width < 1 || length % width != 0)) {
      Fail(std::string(name) + "'s length " + std::to_string(width) + " does not divide " + of + "'s " + std::to_string(length));
    }
  }

  void Fail(const std::string& message) {
    ThrowCoded(env_, code_, call_ + ": " + message);
    ok_ = false;
  }

 private:
  static constexpr size_t kMax = 8;
  napi_env env_;
  const char* code_;
  std::string call_;
  napi_value argv_[kMax];
  size_t argc_ = 0;
  size_t next_ = 0;
  bool ok_ = true;
};

// Adds each (name, callback) to `exports` as a function.
inline void ExportFunctions(napi_env env, napi_value exports, std::initializer_list<std::pair<const char*, napi_callback>> functions) {
  for (const auto& [name, callback] : functions) {
    napi_value value;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &value);
    napi_set_named_property(env, exports, name, value);
  }
}

}  // namespace distlab_native
