// Elementwise float32 passes for the wasm backend's fused ops, run natively on
// the TF.js wasm heap (kernel/src/compute/cpu-vector.ts says when they are used).
//
// Why native code: WebAssembly SIMD is 4 float lanes and has no exponential.
// The wasm GELU took its exponential from XNNPACK's Sigmoid kernel, so a GELU
// was three passes over the tensor (2u, sigmoid, x s): about 3 ns an element
// inside a training step, where one pass here at AVX-512's 16 lanes takes a
// fraction of that (docs/compute.md, "Elementwise passes in native code").
//
// Each loop is compiled for three x86-64 levels (target_clones: v4 = AVX-512,
// v3 = AVX2 with FMA, and the baseline) and the dynamic loader picks the one
// the core runs, so an addon built on one machine runs on any x86-64; other
// architectures get the portable loop.
//
// Exports (Float32Arrays of one length, read and written in place):
//   isa() -> "x86-64-v4" | "x86-64-v3" | "baseline"   the loops this core runs
//   gelu(x, y, s)          u = sqrt(2/pi) (x + 0.044715 x^3), s = sigmoid(2u) = (1 + tanh u) / 2,
//                          y = x s   (GELU, tanh form; s is kept for the gradient)
//   geluGrad(dy, x, s, dx) dx = dy (s + 2 sqrt(2/pi) x s (1 - s) (1 + 3 0.044715 x^2))
#include <node_api.h>

#include <cstdint>
#include <string>

#include "float-args.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DISTLAB_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DISTLAB_VECTOR_CLONES
#endif

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// e^z for z in [-87, 87] (callers clamp), within about 1 ulp: Cephes's expf. z = n ln2 + r with
// n = round(z / ln2), |r| <= ln2 / 2; e^r by a degree-6 polynomial; 2^n built in the exponent
// bits. Written without library calls or branches so that the loops around it vectorise.
inline float ExpClamped(float z) {
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
  const float shifted = z * 1.44269504088896341f + kRoundMagic;
  const float n = shifted - kRoundMagic;
  const int32_t exponent = __builtin_bit_cast(int32_t, shifted) - __builtin_bit_cast(int32_t, kRoundMagic);
  float r = z - n * 0.693359375f;  // ln2 in two parts: the first exact in float, so r loses nothing
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  return er * __builtin_bit_cast(float, (exponent + 127) << 23);
}

DISTLAB_VECTOR_CLONES
void GeluLoop(const float* __restrict x, float* __restrict y, float* __restrict s, int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const float v = x[i];
    // -2u, clamped so e^(-2u) neither overflows nor leaves the exponent range of ExpClamped;
    // at the clamps s is 0 or 1 to float precision anyway (|2u| >= 87).
    float minusTwoU = -2.0f * kSqrt2OverPi * (v + kCubic * v * v * v);
    minusTwoU = minusTwoU < -87.0f ? -87.0f : (minusTwoU > 87.0f ? 87.0f : minusTwoU);
    const float sigmoid = 1.0f / (1.0f + ExpClamped(minusTwoU));
    s[i] = sigmoid;
    y[i] = v * sigmoid;
  }
}

DISTLAB_VECTOR_CLONES
void GeluGradLoop(const float* __restrict dy, const float* __restrict x, const float* __restrict s, float* __restrict dx,
                  int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const float v = x[i], si = s[i];
    dx[i] = dy[i] * (si + 2.0f * kSqrt2OverPi * v * si * (1.0f - si) * (1.0f + 3.0f * kCubic * v * v));
  }
}

napi_value Throw(napi_env env, const std::string& message) { return distlab_native::ThrowCoded(env, "ERR_DISTLAB_CPU_VECTOR", message); }

// Reads `count` Float32Array arguments of one length into `arrays`; false after throwing.
bool ArraysOfOneLength(napi_env env, napi_callback_info info, const char* call, const char* const* names, size_t count,
                       float** arrays, int64_t* length) {
  napi_value argv[4];
  size_t argc = 4;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != count) {
    Throw(env, std::string(call) + " takes " + std::to_string(count) + " Float32Arrays");
    return false;
  }
  for (size_t i = 0; i < count; i++) {
    int64_t available = 0;
    if (!distlab_native::GetFloats(env, argv[i], 0, &arrays[i], &available)) {
      Throw(env, std::string(call) + ": " + names[i] + " must be a Float32Array");
      return false;
    }
    if (i == 0) *length = available;
    if (available != *length) {
      Throw(env, std::string(call) + ": " + names[i] + " has " + std::to_string(available) + " floats, " + names[0] + " " +
                     std::to_string(*length) + " (all must be one length)");
      return false;
    }
  }
  return true;
}

napi_value Gelu(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"x", "y", "s"};
  float* arrays[3];
  int64_t length = 0;
  if (!ArraysOfOneLength(env, info, "gelu(x, y, s)", names, 3, arrays, &length)) return nullptr;
  GeluLoop(arrays[0], arrays[1], arrays[2], length);
  return nullptr;
}

napi_value GeluGrad(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"dy", "x", "s", "dx"};
  float* arrays[4];
  int64_t length = 0;
  if (!ArraysOfOneLength(env, info, "geluGrad(dy, x, s, dx)", names, 4, arrays, &length)) return nullptr;
  GeluGradLoop(arrays[0], arrays[1], arrays[2], arrays[3], length);
  return nullptr;
}

napi_value Isa(napi_env env, napi_callback_info) {
  const char* level = "baseline";
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) {
    level = "x86-64-v4";
  } else if (__builtin_cpu_supports("x86-64-v3")) {
    level = "x86-64-v3";
  }
#endif
  napi_value result;
  napi_create_string_utf8(env, level, NAPI_AUTO_LENGTH, &result);
  return result;
}

}  // namespace

// Context-aware: rank worker threads each load it.
NAPI_MODULE_INIT() {
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {{"isa", Isa}, {"gelu", Gelu}, {"geluGrad", GeluGrad}};
  for (const auto& f : functions) {
    napi_value value;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &value);
    napi_set_named_property(env, exports, f.name, value);
  }
  return exports;
}
