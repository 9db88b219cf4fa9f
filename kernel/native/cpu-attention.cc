// Causal multi-head self-attention on the CPU, straight from the packed q|k|v
// projection: the BLAS's products read each head where it lies in qkv's rows
// (leading dimension 3C) and write the output where it lies in the merged rows
// (leading dimension C), around vector-loops.h's causal softmax. Part of the
// cpu-blas addon (its BLAS); kernel/src/compute/wasm/causal-attention.ts runs it.
//
// Why here and not as TF.js kernels around batched products: the wasm form
// copied q, k, v into a head layout and the output back (four copies a layer
// and step, as many again backward), and made one product call from
// JavaScript per head and sequence (1,152 a tiny-GPT step, a few microseconds
// each). Here each (sequence, head) is four BLAS calls forward, five backward,
// with no copies (docs/compute.md, "Attention on the CPU").
//
// Shapes (rows = batch * time, C = heads * hs; Float32Arrays, read and written in place):
//   causalAttention(qkv [rows, 3C], out [rows, C], probs [batch * heads, T, T], time, heads, scale)
//     per sequence b and head h:  P = causal softmax(scale q k^T),  out = P v   (probs keeps P)
//   causalAttentionGrad(qkv, probs, dy [rows, C], dqkv [rows, 3C], time, heads, scale)
//     dS = scale P (dy v^T - rowsum(dy v^T P));  dq = dS k,  dk = dS^T q,  dv = P^T dy
#include <node_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cpu-blas.h"
#include "float-args.h"
#include "vector-loops.h"

namespace {

using distlab_blas::kNoTrans;
using distlab_blas::kRowMajor;
using distlab_blas::kTrans;
using distlab_native::Arguments;

constexpr const char* kCode = "ERR_DISTLAB_CPU_BLAS";

// The shape every call checks: batch, time, heads and the head size from the arrays' lengths.
struct AttentionShape {
  int64_t batch = 0, time = 0, heads = 0, width = 0, headSize = 0;
};

// Reads time, heads and scale after the arrays; false (having thrown) unless time and heads are integers >= 1.
bool ReadShape(Arguments& args, AttentionShape* shape, float* scale) {
  const double time = args.Number("time"), heads = args.Number("heads");
  *scale = static_cast<float>(args.Number("scale"));
  if (!args.ok()) return false;
  const int64_t t = static_cast<int64_t>(time), h = static_cast<int64_t>(heads);
  if (static_cast<double>(t) != time || static_cast<double>(h) != heads || t < 1 || h < 1) {
    args.Fail("time and heads must be integers >= 1, got " + std::to_string(time) + " and " + std::to_string(heads));
    return false;
  }
  shape->time = t;
  shape->heads = h;
  return true;
}

// Completes the shape from probs' length (batch * heads * T * T), checking qkv's against it.
bool FitProbs(Arguments& args, int64_t qkvLength, int64_t probsLength, AttentionShape* shape) {
  const int64_t perSequence = shape->heads * shape->time * shape->time;
  if (probsLength % perSequence != 0 || probsLength == 0) {
    args.Fail("probs' length " + std::to_string(probsLength) + " is not batch * heads * time * time");
    return false;
  }
  shape->batch = probsLength / perSequence;
  const int64_t rows = shape->batch * shape->time;
  if (qkvLength % (3 * rows) != 0 || (qkvLength / (3 * rows)) % shape->heads != 0) {
    args.Fail("qkv's length " + std::to_string(qkvLength) + " is not " + std::to_string(rows) + " rows of 3 * heads * headSize");
    return false;
  }
  shape->width = qkvLength / (3 * rows);
  shape->headSize = shape->width / shape->heads;
  return true;
}

napi_value CausalAttention(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "causalAttention(qkv, out, probs, time, heads, scale)", 6);
  int64_t qkvLength = 0, probsLength = 0;
  const float* qkv = args.Floats("qkv", &qkvLength);
  float* out = args.FloatsOf("out", qkvLength / 3, "qkv (a third)");
  float* probs = args.Floats("probs", &probsLength);
  AttentionShape shape;
  float scale = 0;
  if (!args.ok() || !ReadShape(args, &shape, &scale) || !FitProbs(args, qkvLength, probsLength, &shape)) return nullptr;
  const distlab_blas::SgemmFn sgemm = distlab_blas::OpenedSgemm();
  if (sgemm == nullptr) return distlab_native::ThrowCoded(env, kCode, "causalAttention: no BLAS library is open (call open(path) first)");
  const int64_t t = shape.time, c = shape.width, hs = shape.headSize;
  std::vector<float> scores(static_cast<size_t>(t * t));  // [T, T], one (sequence, head) at a time
  for (int64_t b = 0; b < shape.batch; b++) {
    for (int64_t h = 0; h < shape.heads; h++) {
      const float* q = qkv + b * t * 3 * c + h * hs;  // [T, hs], leading dimension 3C
      const float* k = q + c;
      const float* v = q + 2 * c;
      float* p = probs + (b * shape.heads + h) * t * t;
      sgemm(kRowMajor, kNoTrans, kTrans, t, t, hs, 1.0f, q, 3 * c, k, 3 * c, 0.0f, scores.data(), t);
      distlab_vector::CausalSoftmaxLoop(scores.data(), p, t, t, scale);
      sgemm(kRowMajor, kNoTrans, kNoTrans, t, hs, t, 1.0f, p, t, v, 3 * c, 0.0f, out + b * t * c + h * hs, c);
    }
  }
  return nullptr;
}

napi_value CausalAttentionGrad(napi_env env, napi_callback_info info) {
  Arguments args(env, info, kCode, "causalAttentionGrad(qkv, probs, dy, dqkv, time, heads, scale)", 7);
  int64_t qkvLength = 0, probsLength = 0;
  const float* qkv = args.Floats("qkv", &qkvLength);
  const float* probs = args.Floats("probs", &probsLength);
  const float* dy = args.FloatsOf("dy", qkvLength / 3, "qkv (a third)");
  float* dqkv = args.FloatsOf("dqkv", qkvLength, "qkv");
  AttentionShape shape;
  float scale = 0;
  if (!args.ok() || !ReadShape(args, &shape, &scale) || !FitProbs(args, qkvLength, probsLength, &shape)) return nullptr;
  const distlab_blas::SgemmFn sgemm = distlab_blas::OpenedSgemm();
  if (sgemm == nullptr) return distlab_native::ThrowCoded(env, kCode, "causalAttentionGrad: no BLAS library is open (call open(path) first)");
  const int64_t t = shape.time, c = shape.width, hs = shape.headSize;
  std::vector<float> dProbs(static_cast<size_t>(t * t)), dScores(static_cast<size_t>(t * t));
  for (int64_t b = 0; b < shape.batch; b++) {
    for (int64_t h = 0; h < shape.heads; h++) {
      const int64_t at = b * t * 3 * c + h * hs;
      const float *q = qkv + at, *k = q + c, *v = q + 2 * c;
      float *dq = dqkv + at, *dk = dq + c, *dv = dq + 2 * c;
      const float* p = probs + (b * shape.heads + h) * t * t;
      const float* dOut = dy + b * t * c + h * hs;  // [T, hs], leading dimension C
      sgemm(kRowMajor, kNoTrans, kTrans, t, t, hs, 1.0f, dOut, c, v, 3 * c, 0.0f, dProbs.data(), t);
      distlab_vector::CausalSoftmaxGradLoop(p, dProbs.data(), dScores.data(), t, t, scale);
      sgemm(kRowMajor, kNoTrans, kNoTrans, t, hs, t, 1.0f, dScores.data(), t, k, 3 * c, 0.0f, dq, 3 * c);
      sgemm(kRowMajor, kTrans, kNoTrans, t, hs, t, 1.0f, dScores.data(), t, q, 3 * c, 0.0f, dk, 3 * c);
      sgemm(kRowMajor, kTrans, kNoTrans, t, hs, t, 1.0f, p, t, dOut, c, 0.0f, dv, 3 * c);
    }
  }
  return nullptr;
}

}  // namespace

void distlab_blas::AddAttentionExports(napi_env env, napi_value exports) {
  distlab_native::ExportFunctions(env, exports, {{"causalAttention", CausalAttention}, {"causalAttentionGrad", CausalAttentionGrad}});
}
