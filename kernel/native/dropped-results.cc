// Tells the result pool (kernel/src/comm/dropped-results.ts) that a result it
// handed out was collected: watch(object, flags, index) sets flags[index] to 1
// once V8 collects `object`.
//
// Why native: a JavaScript FinalizationRegistry learns of a dropped result
// only after a full mark-compact collection (5-35 ms of a rank's time,
// measured), while a native finalizer (napi_add_finalizer, a weak handle) is
// also run after a young-generation scavenge, which takes well under a
// millisecond in a rank. So the pool gets its blocks back with scavenges.
//
// Exports:
//   watch(object, flags, index)   flags: an Int32Array over a SharedArrayBuffer the caller keeps
//                                 for the thread's life; index: a word of it, set to 1 when
//                                 `object` is collected (the caller clears it before watching)
#include <node_api.h>

#include <cstdint>

namespace {

napi_value Fail(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return nullptr;
}

void Collected(napi_env, void*, void* flag) {
  __atomic_store_n(static_cast<int32_t*>(flag), 1, __ATOMIC_SEQ_CST);
}

napi_value Watch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 3) return Fail(env, "watch: expected (object, flags, index)");
  napi_valuetype kind;
  if (napi_typeof(env, argv[0], &kind) != napi_ok || kind != napi_object) return Fail(env, "watch: expected an object to watch");
  napi_typedarray_type type;
  size_t count = 0;
  void* flags = nullptr;
  if (napi_get_typedarray_info(env, argv[1], &type, &count, &flags, nullptr, nullptr) != napi_ok || type != napi_int32_array || flags == nullptr) {
    return Fail(env, "watch: flags must be an Int32Array");
  }
  int64_t index;
  if (napi_get_value_int64(env, argv[2], &index) != napi_ok || index < 0 || static_cast<size_t>(index) >= count) {
    return Fail(env, "watch: index is outside flags");
  }
  if (napi_add_finalizer(env, argv[0], nullptr, Collected, static_cast<int32_t*>(flags) + index, nullptr) != napi_ok) {
    return Fail(env, "watch: cannot attach a finalizer to this object");
  }
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "watch", NAPI_AUTO_LENGTH, Watch, nullptr, &fn);
  napi_set_named_property(env, exports, "watch", fn);
  return exports;
}
