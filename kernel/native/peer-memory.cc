// Reductions and copies over other rank threads' arrays, addressed by raw
// pointers, for the thread world's direct allReduce
// (kernel/src/comm/peer-memory.ts says when it is used).
//
// Why native code: rank threads share one address space, but JavaScript can
// only reach another thread's array if it lives in shared memory. A plain
// Float32Array (what a user passes first) had to be copied into the world's
// shared memory and the result copied back out: 128 MiB of copies around a
// 64 MiB allReduce that otherwise moves 64 MiB a rank. With its address, a
// peer reduces straight from it, as MPI's cross-memory attach reads another
// process's pages (docs/collectives.md).
//
// The caller owns every safety rule (peer-memory.ts): an address is posted
// only while its owner is inside the call, and read only between a reader's
// busy mark and the owner's leave; lengths are checked there against the call.
//
// Exports:
//   address(typedArray) -> number     where the view's first element is (a
//                                     user-space address, below 2^53, exact as a double)
//   reduce(dtype, dst, sources, count)  dst[i] = sources[0][i] + sources[1][i] + ...
//                                     in that order; dtype 0 float32, 1 float64; dst may
//                                     be any source (in place); sources an array of addresses
//   copy(dst, src, bytes)             memmove
//   populate(address, bytes) -> bool  faults in the pages of [address, address + bytes)
//                                     for writing, contents unchanged (Linux 5.14's
//                                     MADV_POPULATE_WRITE: one system call instead of a
//                                     fault per 4 KiB page, about half the time for fresh
//                                     memory); false where the kernel has no such advice
#include <node_api.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace {

constexpr size_t kMaxSources = 64;  // MAX_SHM_RANKS (shm-layout.ts)

napi_value Fail(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return nullptr;
}

bool ReadAddress(napi_env env, napi_value value, uintptr_t* out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok || !(d > 0) || d >= 9007199254740992.0) return false;
  *out = static_cast<uintptr_t>(d);
  return static_cast<double>(*out) == d;
}

bool ReadCount(napi_env env, napi_value value, size_t* out) {
  int64_t v;
  if (napi_get_value_int64(env, value, &v) != napi_ok || v < 0) return false;
  *out = static_cast<size_t>(v);
  return true;
}

napi_value Address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool is_typed = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed) return Fail(env, "address: expected a typed array");
  napi_typedarray_type type;
  size_t length;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr) != napi_ok || data == nullptr) {
    return Fail(env, "address: the typed array has no memory (detached or empty)");
  }
  napi_value result;
  napi_create_double(env, static_cast<double>(reinterpret_cast<uintptr_t>(data)), &result);
  return result;
}

#if defined(__SSE2__)
// Writes len elements to d with non-temporal stores, which skip reading d's cache lines before
// writing them (a separate output is 64 MiB nobody reads in this call: without them, writing it
// cost as much again in reads). Head elements up to a 16-byte boundary are stored plainly.
inline void StreamOut(float* d, const float* src, size_t len) {
  size_t i = 0;
  for (; i < len && (reinterpret_cast<uintptr_t>(d + i) & 15) != 0; i++) d[i] = src[i];
  for (; i + 4 <= len; i += 4) _mm_stream_ps(d + i, _mm_loadu_ps(src + i));
  for (; i < len; i++) d[i] = src[i];
}
inline void StreamOut(double* d, const double* src, size_t len) {
  size_t i = 0;
  for (; i < len && (reinterpret_cast<uintptr_t>(d + i) & 15) != 0; i++) d[i] = src[i];
  for (; i + 2 <= len; i += 2) _mm_stream_pd(d + i, _mm_loadu_pd(src + i));
  for (; i < len; i++) d[i] = src[i];
}
inline void StreamFence() { _mm_sfence(); }
#else
template <typename T>
inline void StreamOut(T* d, const T* src, size_t len) {
  for (size_t i = 0; i < len; i++) d[i] = src[i];
}
inline void StreamFence() {}
#endif

// dst = s[0] + s[1] + ... + s[n-1], element by element, summed left to right (the order of the
// WebAssembly kernels, so every path rounds alike). dst may be any one of the sources (an in-place
// call): each block of elements is summed into a local buffer from every source before dst's block
// is written. A dst that is no source is written with non-temporal stores. The inner loops
// vectorise at -O3; a block of 8-16 KiB stays in L1.
template <typename T>
void SumInto(T* dst, T* const* sources, size_t n, size_t count) {
  constexpr size_t kBlock = 2048;
  T sum[kBlock];
  bool aliased = false;
  for (size_t r = 0; r < n; r++) aliased = aliased || sources[r] == dst;
  for (size_t at = 0; at < count; at += kBlock) {
    const size_t len = count - at < kBlock ? count - at : kBlock;
    const T* a = sources[0] + at;
    const T* b = sources[1] + at;
    for (size_t i = 0; i < len; i++) sum[i] = a[i] + b[i];
    for (size_t r = 2; r < n; r++) {
      const T* s = sources[r] + at;
      for (size_t i = 0; i < len; i++) sum[i] += s[i];
    }
    T* d = dst + at;
    if (aliased) {
      for (size_t i = 0; i < len; i++) d[i] = sum[i];
    } else {
      StreamOut(d, sum, len);
    }
  }
  if (!aliased) StreamFence();
}

napi_value Reduce(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 4) return Fail(env, "reduce: expected (dtype, dst, sources, count)");
  int32_t dtype;
  uintptr_t dst;
  size_t count;
  if (napi_get_value_int32(env, argv[0], &dtype) != napi_ok || (dtype != 0 && dtype != 1)) return Fail(env, "reduce: dtype must be 0 (float32) or 1 (float64)");
  if (!ReadAddress(env, argv[1], &dst)) return Fail(env, "reduce: dst is not an address");
  if (!ReadCount(env, argv[3], &count)) return Fail(env, "reduce: count must be an integer >= 0");
  uint32_t n = 0;
  if (napi_get_array_length(env, argv[2], &n) != napi_ok || n < 2 || n > kMaxSources) return Fail(env, "reduce: sources must be an array of 2 to 64 addresses");
  uintptr_t sources[kMaxSources];
  for (uint32_t r = 0; r < n; r++) {
    napi_value element;
    if (napi_get_element(env, argv[2], r, &element) != napi_ok || !ReadAddress(env, element, &sources[r])) return Fail(env, "reduce: a source is not an address");
  }
  if (dtype == 0) {
    SumInto(reinterpret_cast<float*>(dst), reinterpret_cast<float* const*>(sources), n, count);
  } else {
    SumInto(reinterpret_cast<double*>(dst), reinterpret_cast<double* const*>(sources), n, count);
  }
  return nullptr;
}

napi_value Copy(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uintptr_t dst, src;
  size_t bytes;
  if (argc < 3 || !ReadAddress(env, argv[0], &dst) || !ReadAddress(env, argv[1], &src) || !ReadCount(env, argv[2], &bytes)) {
    return Fail(env, "copy: expected (dst address, src address, bytes)");
  }
  std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
  return nullptr;
}

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23  // Linux 5.14 (older headers lack it; older kernels answer EINVAL)
#endif

napi_value Populate(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uintptr_t address;
  size_t bytes;
  if (argc < 2 || !ReadAddress(env, argv[0], &address) || !ReadCount(env, argv[1], &bytes)) {
    return Fail(env, "populate: expected (address, bytes)");
  }
  bool populated = false;
#if defined(__linux__)
  // Whole pages around the range: the advice changes no byte, so the pages' other bytes (the same
  // allocation's, or its allocator's header) are untouched.
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = address & ~(page - 1);
  const uintptr_t end = (address + bytes + page - 1) & ~(page - 1);
  populated = bytes == 0 || madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE) == 0;
#endif
  napi_value result;
  napi_get_boolean(env, populated, &result);
  return result;
}

}  // namespace

NAPI_MODULE_INIT() {
  struct Export {
    const char* name;
    napi_callback fn;
  };
  const Export exports_list[] = {{"address", Address}, {"reduce", Reduce}, {"copy", Copy}, {"populate", Populate}};
  for (const Export& f : exports_list) {
    napi_value value;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &value);
    napi_set_named_property(env, exports, f.name, value);
  }
  return exports;
}
