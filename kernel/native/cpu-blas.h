// What cpu-blas.cc shares with the other sources of its addon (cpu-attention.cc):
// the BLAS it opened, and how those sources add their exports.
#pragma once

#include <node_api.h>

namespace distlab_blas {

// CBLAS's enums, by value (cblas.h is not needed to build).
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

using SgemmFn = void (*)(int order, int transA, int transB, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc);

// The library's cblas_sgemm, or nullptr before open(path) succeeded. One library per process.
SgemmFn OpenedSgemm();

// cpu-attention.cc's exports, added to the addon's.
void AddAttentionExports(napi_env env, napi_value exports);

}  // namespace distlab_blas
