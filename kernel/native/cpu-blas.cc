// Float32 matrix products on the CPU through the system's BLAS, for the wasm
// backend's matMul (kernel/src/compute/cpu-blas.ts says when it is used).
// Two kinds of library serve: a CBLAS (cblas_sgemm: OpenBLAS and others) and
// oneDNN (dnnl_sgemm, row-major with the same operands).
//
// Why a BLAS and not only WebAssembly: WebAssembly SIMD is 4 float lanes wide.
// On a core with AVX-512 a tuned BLAS (OpenBLAS, which PyTorch's CPU build
// uses too) does 16 lanes a fused multiply-add: 140-150 GFLOP/s against the
// wasm kernel's 40-50 on the build machine (docs/compute.md).
//
// Why oneDNN too: its products are generated at run time for the core's own
// instruction set, so a CPU newer than the library is still served with its
// widest vectors. Debian 12's OpenBLAS 0.3.21 does not know Emerald Rapids and
// falls back to its SSE3 (Prescott) kernels there, 4-5x slower; oneDNN 2.6
// from the same release runs the MLP's products 10% faster than OpenBLAS's
// AVX-512 kernels even when those are forced (docs/compute.md).
//
// Why dlopen and not a link-time dependency: the addon builds with nothing but
// g++ and Node's headers (no BLAS headers or -dev package), and loads whichever
// library the machine has, or none; then the wasm kernel stays in use.
//
// Exports:
//   open(path) -> { library, kind, config }  loads the library (throws naming it on failure);
//                                            kind "cblas" or "onednn", config its build description
//   setThreads(n) -> number | null           the library's own thread count for the calling thread:
//                                            OpenBLAS's pool (one per process), or OpenMP's for oneDNN
//                                            (each thread's own); read back after setting, null where
//                                            the library has no such setting
//   sgemm(transA, transB, m, n, k, a, aOffset, b, bOffset, c, cOffset, beta)
//     row-major c[cOffset ..][m, n] = op(a) op(b) + beta c, op = transpose or not;
//     a, b, c are Float32Arrays, offsets in floats. lda = transA ? m : k,
//     ldb = transB ? k : n, ldc = n (dense operands, as TF.js stores them).
//     Checks every argument and every operand's extent before touching memory.
#include <dlfcn.h>
#include <node_api.h>

#include <cstdint>
#include <string>

#include "cpu-blas.h"
#include "float-args.h"

using distlab_blas::kNoTrans;
using distlab_blas::kRowMajor;
using distlab_blas::kTrans;
using distlab_blas::SgemmFn;

namespace {

using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
using ConfigFn = const char* (*)();

// oneDNN's C API (dnnl.h), by value so its headers are not needed to build.
using DnnlSgemmFn = int (*)(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                            const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
struct DnnlVersion {
  int major, minor, patch;
  const char* hash;
  unsigned cpuRuntime, gpuRuntime;
};
using DnnlVersionFn = const DnnlVersion* (*)();
constexpr unsigned kDnnlRuntimeOmp = 2, kDnnlRuntimeTbb = 4, kDnnlRuntimeSeq = 1;

// One library per process: every thread (rank) that loads the addon shares it.
SgemmFn sgemm = nullptr;
DnnlSgemmFn dnnlSgemm = nullptr;
SetThreadsFn setThreads = nullptr;
GetThreadsFn getThreads = nullptr;
std::string openedPath, openedKind, openedConfig;

// dnnl_sgemm behind CBLAS's signature, so cpu-attention.cc's products call either library alike.
// Every caller passes row-major operands, which is dnnl_sgemm's only layout. Its status is not
// read: it fails only on arguments the exports have already checked (shapes, leading dimensions).
void DnnlAsCblas(int /*rowMajor*/, int transA, int transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                 int ldb, float beta, float* c, int ldc) {
  dnnlSgemm(transA == kTrans ? 'T' : 'N', transB == kTrans ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// "oneDNN 2.6.3 (OpenMP)": the version and the CPU threading it was built with.
std::string DnnlConfig(void* handle) {
  auto versionFn = reinterpret_cast<DnnlVersionFn>(dlsym(handle, "dnnl_version"));
  if (versionFn == nullptr) return "oneDNN";
  const DnnlVersion* v = versionFn();
  const unsigned runtime = v->cpuRuntime;
  const char* threading = runtime == kDnnlRuntimeOmp ? "OpenMP" : runtime == kDnnlRuntimeTbb ? "TBB" : runtime == kDnnlRuntimeSeq ? "sequential" : "threadpool";
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " (" + threading + ")";
}

using distlab_native::GetFloats;

napi_value Throw(napi_env env, const std::string& message) { return distlab_native::ThrowCoded(env, "ERR_DISTLAB_CPU_BLAS", message); }

bool GetString(napi_env env, napi_value value, std::string* out) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &length) != napi_ok) return false;
  out->resize(length);
  return napi_get_value_string_utf8(env, value, out->data(), length + 1, &length) == napi_ok;
}

napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  std::string path;
  if (argc < 1 || !GetString(env, argv[0], &path)) return Throw(env, "open(path): path must be a string");
  if (sgemm != nullptr && path != openedPath) {
    return Throw(env, "open(" + path + "): this process already uses " + openedPath);
  }
  if (sgemm == nullptr) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) return Throw(env, std::string("cannot load ") + path + ": " + dlerror());
    auto cblas = reinterpret_cast<SgemmFn>(dlsym(handle, "cblas_sgemm"));
    auto dnnl = reinterpret_cast<DnnlSgemmFn>(dlsym(handle, "dnnl_sgemm"));
    if (cblas == nullptr && dnnl == nullptr) {
      dlclose(handle);
      return Throw(env, path + " has neither cblas_sgemm nor dnnl_sgemm (not a CBLAS or oneDNN library)");
    }
    if (cblas != nullptr) {
      setThreads = reinterpret_cast<SetThreadsFn>(dlsym(handle, "openblas_set_num_threads"));
      getThreads = reinterpret_cast<GetThreadsFn>(dlsym(handle, "openblas_get_num_threads"));
      auto configFn = reinterpret_cast<ConfigFn>(dlsym(handle, "openblas_get_config"));
      openedConfig = configFn != nullptr ? configFn() : "";
      openedKind = "cblas";
      sgemm = cblas;
    } else {
      // An OpenMP build's threads are OpenMP's, set per calling thread (dlsym finds them in its libgomp).
      setThreads = reinterpret_cast<SetThreadsFn>(dlsym(handle, "omp_set_num_threads"));
      getThreads = reinterpret_cast<GetThreadsFn>(dlsym(handle, "omp_get_max_threads"));
      openedConfig = DnnlConfig(handle);
      openedKind = "onednn";
      dnnlSgemm = dnnl;
      sgemm = DnnlAsCblas;
    }
    openedPath = path;
  }
  napi_value result, value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, openedPath.c_str(), NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, result, "library", value);
  napi_create_string_utf8(env, openedKind.c_str(), NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, result, "kind", value);
  if (openedConfig.empty()) {
    napi_get_undefined(env, &value);
  } else {
    napi_create_string_utf8(env, openedConfig.c_str(), NAPI_AUTO_LENGTH, &value);
  }
  napi_set_named_property(env, result, "config", value);
  return result;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t threads = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1) {
    return Throw(env, "setThreads(n): n must be an integer >= 1");
  }
  napi_value applied;
  if (setThreads == nullptr || getThreads == nullptr) {
    napi_get_null(env, &applied);
    return applied;
  }
  setThreads(threads);
  napi_create_int32(env, getThreads(), &applied);
  return applied;
}

napi_value Sgemm(napi_env env, napi_callback_info info) {
  if (sgemm == nullptr) return Throw(env, "sgemm: no BLAS library is open (call open(path) first)");
  size_t argc = 12;
  napi_value argv[12];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 12) return Throw(env, "sgemm takes 12 arguments: transA, transB, m, n, k, a, aOffset, b, bOffset, c, cOffset, beta");
  bool transA = false, transB = false;
  int32_t m = 0, n = 0, k = 0, aOffset = 0, bOffset = 0, cOffset = 0;
  double beta = 0;
  if (napi_get_value_bool(env, argv[0], &transA) != napi_ok || napi_get_value_bool(env, argv[1], &transB) != napi_ok) {
    return Throw(env, "sgemm: transA and transB must be booleans");
  }
  if (napi_get_value_int32(env, argv[2], &m) != napi_ok || napi_get_value_int32(env, argv[3], &n) != napi_ok ||
      napi_get_value_int32(env, argv[4], &k) != napi_ok || m < 0 || n < 0 || k < 0) {
    return Throw(env, "sgemm: m, n and k must be integers >= 0");
  }
  if (napi_get_value_int32(env, argv[6], &aOffset) != napi_ok || napi_get_value_int32(env, argv[8], &bOffset) != napi_ok ||
      napi_get_value_int32(env, argv[10], &cOffset) != napi_ok || napi_get_value_double(env, argv[11], &beta) != napi_ok) {
    return Throw(env, "sgemm: offsets must be integers and beta a number");
  }
  float *a = nullptr, *b = nullptr, *c = nullptr;
  int64_t aHas = 0, bHas = 0, cHas = 0;
  if (!GetFloats(env, argv[5], aOffset, &a, &aHas)) return Throw(env, "sgemm: a must be a Float32Array and aOffset within it");
  if (!GetFloats(env, argv[7], bOffset, &b, &bHas)) return Throw(env, "sgemm: b must be a Float32Array and bOffset within it");
  if (!GetFloats(env, argv[9], cOffset, &c, &cHas)) return Throw(env, "sgemm: c must be a Float32Array and cOffset within it");
  const int64_t M = m, N = n, K = k;
  if (aHas < M * K || bHas < K * N || cHas < M * N) {
    return Throw(env, "sgemm: an operand is shorter than its shape (a needs m*k, b k*n, c m*n floats from its offset)");
  }
  if (m == 0 || n == 0) return nullptr;
  if (k == 0) {
    // BLAS leaves c scaled by beta when k is 0; spell it out rather than rely on every library doing so
    for (int64_t i = 0; i < M * N; i++) c[i] = beta == 0 ? 0.0f : static_cast<float>(beta) * c[i];
    return nullptr;
  }
  sgemm(kRowMajor, transA ? kTrans : kNoTrans, transB ? kTrans : kNoTrans, m, n, k, 1.0f, a, transA ? m : k, b, transB ? k : n,
        static_cast<float>(beta), c, n);
  return nullptr;
}

}  // namespace

distlab_blas::SgemmFn distlab_blas::OpenedSgemm() { return sgemm; }

// Context-aware: rank worker threads each load it.
NAPI_MODULE_INIT() {
  distlab_native::ExportFunctions(env, exports, {{"open", Open}, {"setThreads", SetThreads}, {"sgemm", Sgemm}});
  distlab_blas::AddAttentionExports(env, exports);
  return exports;
}
