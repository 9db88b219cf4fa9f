// N-API helpers shared by the addons that work in place on Float32Arrays
// (cpu-blas.cc, cpu-vector.cc): the views are the TF.js wasm heap's own memory.
#pragma once

#include <node_api.h>

#include <cstdint>
#include <string>

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

}  // namespace distlab_native
