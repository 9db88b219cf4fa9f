// Elementwise and row-wise float32 passes for the wasm backend's fused ops, run
// natively on the TF.js wasm heap (kernel/src/compute/cpu-vector.ts says when
// they are used).
//
// Why native code: WebAssembly SIMD is 4 float lanes and has no exponential.
// The wasm GELU took its exponential from XNNPACK's Sigmoid kernel, so a GELU
// was three passes over the tensor (2u, sigmoid, x s): about 3 ns an element
// inside a training step, where one pass here at AVX-512's 16 lanes takes a
// fraction of that (docs/compute.md, "Elementwise passes in native code").
//
// The loops are vector-loops.h's, each compiled per instruction set and picked
// at load for the core it runs on, so an addon built on one machine runs on
// any x86-64; other architectures get the portable loop. This file reads and
// checks the arguments.
//
// Exports (Float32Arrays, read and written in place; lengths checked, naming the array):
//   isa() -> "avx512f" | "avx2" | "baseline"   the loops this core runs
//   gelu(x, y, s)          u = sqrt(2/pi) (x + 0.044715 x^3), s = sigmoid(2u) = (1 + tanh u) / 2,
//                          y = x s   (GELU, tanh form; s is kept for the gradient)
//   geluGrad(dy, x, s, dx) dx = dy (s + 2 sqrt(2/pi) x s (1 - s) (1 + 3 0.044715 x^2))
//   add(a, b, out)         out = a + b
//   addRows(x, bias, relu) x [rows, bias.length] += bias in every row, in place; then max(x, 0) if relu
//   columnSum(x, out)      out[c] = sum over rows r of x[r, c], x viewed as [rows, out.length], in row order
//   reluGradSum(dy, y, dz, dbias)   dz = dy where y > 0, else 0; dbias = columnSum(dz) (relu's output y,
//                          positive exactly where its input was; a linear layer's two gradients at once)
//   causalSoftmax(scores, y, time, scale)      scores, y [..., time, time] (query i, key j):
//                          y = softmax_j(scale s) over keys j <= i, 0 for j > i
//   causalSoftmaxGrad(y, dy, ds, time, scale)  ds = scale y (dy - sum_j dy y), 0 for j > i
//   layerNorm(x, gain, bias, y, epsilon)       x, y [rows, C], gain, bias [C]:
//                          y = (x - mean) rstd gain + bias, rstd = 1 / sqrt(var + epsilon), per row
//   layerNormGrad(dy, x, gain, dx, dgain, dbias, epsilon)   xhat = (x - mean) rstd, g = dy gain:
//                          dx = rstd (g - mean(g) - xhat mean(g xhat)); dgain, dbias [C] = sums over rows
//                          of dy xhat and dy (written, not accumulated)
// Row sums are float32 in a vector order (the WebAssembly loops' are float32 too, four lanes).
#include <node_api.h>

#include <cstdint>

#include "float-args.h"
#include "vector-loops.h"

namespace {

using distlab_native::Arguments;
using namespace distlab_vector;  // the *Loop functions

constexpr const char* kCode = "ERR_DISTLAB_CPU_VECTOR";

napi_value Gelu(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "gelu(x, y, s)", 3);
  int64_t n = 0;
  const float* x = args.Floats("x", &n);
  float* y = args.FloatsOf("y", n, "x");
  float* s = args.FloatsOf("s", n, "x");
  if (args.ok()) GeluLoop(x, y, s, n);
  return nullptr;
}

napi_value GeluGrad(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "geluGrad(dy, x, s, dx)", 4);
  int64_t n = 0;
  const float* dy = args.Floats("dy", &n);
  const float* x = args.FloatsOf("x", n, "dy");
  const float* s = args.FloatsOf("s", n, "dy");
  float* dx = args.FloatsOf("dx", n, "dy");
  if (args.ok()) GeluGradLoop(dy, x, s, dx, n);
  return nullptr;
}

napi_value Add(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "add(a, b, out)", 3);
  int64_t n = 0;
  const float* a = args.Floats("a", &n);
  const float* b = args.FloatsOf("b", n, "a");
  float* out = args.FloatsOf("out", n, "a");
  if (args.ok()) AddLoop(a, b, out, n);
  return nullptr;
}

napi_value AddRows(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "addRows(x, bias, relu)", 3);
  int64_t n = 0, columns = 0;
  float* x = args.Floats("x", &n);
  const float* bias = args.Floats("bias", &columns);
  const bool relu = args.Boolean("relu");
  args.Divides("bias", columns, "x", n);
  if (args.ok()) AddRowsLoop(x, bias, n / columns, columns, relu);
  return nullptr;
}

napi_value ColumnSum(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "columnSum(x, out)", 2);
  int64_t n = 0, columns = 0;
  const float* x = args.Floats("x", &n);
  float* out = args.Floats("out", &columns);
  args.Divides("out", columns, "x", n);
  if (args.ok()) ColumnSumLoop(x, out, n / columns, columns);
  return nullptr;
}

napi_value ReluGradSum(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "reluGradSum(dy, y, dz, dbias)", 4);
  int64_t n = 0, columns = 0;
  const float* dy = args.Floats("dy", &n);
  const float* y = args.FloatsOf("y", n, "dy");
  float* dz = args.FloatsOf("dz", n, "dy");
  float* dbias = args.Floats("dbias", &columns);
  args.Divides("dbias", columns, "dy", n);
  if (args.ok()) ReluGradSumLoop(dy, y, dz, dbias, n / columns, columns);
  return nullptr;
}

napi_value CausalSoftmax(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "causalSoftmax(scores, y, time, scale)", 4);
  int64_t n = 0;
  const float* scores = args.Floats("scores", &n);
  float* y = args.FloatsOf("y", n, "scores");
  const int64_t time = args.Side("time", n);
  const float scale = static_cast<float>(args.Number("scale"));
  if (args.ok()) CausalSoftmaxLoop(scores, y, n / time, time, scale);
  return nullptr;
}

napi_value CausalSoftmaxGrad(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "causalSoftmaxGrad(y, dy, ds, time, scale)", 5);
  int64_t n = 0;
  const float* y = args.Floats("y", &n);
  const float* dy = args.FloatsOf("dy", n, "y");
  float* ds = args.FloatsOf("ds", n, "y");
  const int64_t time = args.Side("time", n);
  const float scale = static_cast<float>(args.Number("scale"));
  if (args.ok()) CausalSoftmaxGradLoop(y, dy, ds, n / time, time, scale);
  return nullptr;
}

napi_value LayerNorm(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "layerNorm(x, gain, bias, y, epsilon)", 5);
  int64_t n = 0, width = 0;
  const float* x = args.Floats("x", &n);
  const float* gain = args.Floats("gain", &width);
  const float* bias = args.FloatsOf("bias", width, "gain");
  float* y = args.FloatsOf("y", n, "x");
  const float epsilon = static_cast<float>(args.Number("epsilon"));
  args.Divides("gain", width, "x", n);
  if (args.ok()) LayerNormLoop(x, gain, bias, y, n / width, width, epsilon);
  return nullptr;
}

napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "layerNormGrad(dy, x, gain, dx, dgain, dbias, epsilon)", 7);
  int64_t n = 0, width = 0;
  const float* dy = args.Floats("dy", &n);
  const float* x = args.FloatsOf("x", n, "dy");
  const float* gain = args.Floats("gain", &width);
  float* dx = args.FloatsOf("dx", n, "dy");
  float* dgain = args.FloatsOf("dgain", width, "gain");
  float* dbias = args.FloatsOf("dbias", width, "gain");
  const float epsilon = static_cast<float>(args.Number("epsilon"));
  args.Divides("gain", width, "dy", n);
  if (args.ok()) LayerNormGradLoop(dy, x, gain, dx, dgain, dbias, n / width, width, epsilon);
  return nullptr;
}

napi_value Isa(napi_env env, napi_callback_info) {
  const char* level = "baseline";
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  // the order target_clones dispatches in (vector-loops.h)
  if (__builtin_cpu_supports("avx512f")) {
    level = "avx512f";
  } else if (__builtin_cpu_supports("avx2")) {
    level = "avx2";
  }
#endif
  napi_value result;
  napi_create_string_utf8(env, level, NAPI_AUTO_LENGTH, &result);
  return result;
}

}  // namespace

// Context-aware: rank worker threads each load it.
NAPI_MODULE_INIT() {
  distlab_native::ExportFunctions(env, exports,
                                  {{"isa", Isa},
                                   {"gelu", Gelu},
                                   {"geluGrad", GeluGrad},
                                   {"add", Add},
                                   {"addRows", AddRows},
                                   {"columnSum", ColumnSum},
                                   {"reluGradSum", ReluGradSum},
                                   {"causalSoftmax", CausalSoftmax},
                                   {"causalSoftmaxGrad", CausalSoftmaxGrad},
                                   {"layerNorm", LayerNorm},
                                   {"layerNormGrad", LayerNormGrad}});
  return exports;
}
