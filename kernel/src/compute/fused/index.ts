/**
 * Fused ops: one or two kernels each way where the backend has distlab's
 * kernels (webgpu: WGSL dispatches, registered by ../webgpu/overrides.ts;
 * wasm: SIMD passes over the heap, registered by ../wasm/overrides.ts), the
 * same math in stock TF.js ops on every other backend. Each takes the TF.js
 * module the caller uses (the GPU benchmark bundles @tensorflow/tfjs-core
 * alone).
 */
export { layerNorm, layerNormReference, LAYER_NORM_EPSILON } from "./layer-norm";
export { gelu, geluReference } from "./gelu";
export { causalMask, causalSoftmax, causalSoftmaxReference } from "./causal-softmax";
export { causalAttention, stockCausalAttention, type AttentionShape } from "./causal-attention";
export { softmaxCrossEntropy, stockSoftmaxCrossEntropy } from "./cross-entropy";
export { linear } from "./linear";
export { matMul, untransposedMatMul, untransposedLinear, transposeLast, UNTRANSPOSED_MIN_SIZE } from "./mat-mul";
