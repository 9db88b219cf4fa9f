/**
 * _FusedMatMul (matMul + bias + activation in one kernel, what tf.fused.matMul
 * and tf.layers' Dense use) for the wasm backend, through the same SIMD
 * kernel as BatchMatMul (batch-mat-mul.ts). A bias with no activation or
 * relu is batch-mat-mul.ts's biasedProduct (one SIMD pass adds the bias and
 * applies relu, tf.layers.dense's common case); otherwise the bias starts the
 * product, relu runs over the result in place, and other activations call
 * the stock activation kernel on it.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { biasedProduct, gemmApplies, gemmProduct, reluInPlace } from "./batch-mat-mul";
import { dispose, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

/** tf.fused activation name -> the stock kernel that applies it, and how to call it. */
const ACTIVATIONS: Record<string, (x: TensorInfo, extra: { alpha?: TensorInfo; leakyreluAlpha?: number }) => { kernel: string; inputs: Record<string, TensorInfo>; attrs: Record<string, unknown> }> = {
  relu6: (x) => ({ kernel: "Relu6", inputs: { x }, attrs: {} }),
  elu: (x) => ({ kernel: "Elu", inputs: { x }, attrs: {} }),
  sigmoid: (x) => ({ kernel: "Sigmoid", inputs: { x }, attrs: {} }),
  leakyrelu: (x, { leakyreluAlpha }) => ({ kernel: "LeakyRelu", inputs: { x }, attrs: { alpha: leakyreluAlpha ?? 0.2 } }),
  prelu: (x, { alpha }) => ({ kernel: "Prelu", inputs: { x, alpha: alpha! }, attrs: {} }),
};

export function fusedMatMulOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const inputs = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number };
    const { a, b, bias } = inputs;
    const n = attrs.transposeB ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!;
    const known = attrs.activation === "linear" || attrs.activation === "relu" || attrs.activation in ACTIVATIONS;
    // A bias that broadcasts other than along the rows ([1], [m, 1]) keeps the stock kernel.
    if (!gemmApplies(a, b) || !known || (bias !== undefined && (bias.dtype !== "float32" || sizeOf(bias.shape) !== n || bias.shape.length !== 1))) {
      return stock.get("_FusedMatMul")(args) as TensorInfo;
    }
    const relu = attrs.activation === "relu";
    if (bias !== undefined && (relu || attrs.activation === "linear")) return biasedProduct(backend, a, b, attrs.transposeA, attrs.transposeB, bias, relu);
    const product = gemmProduct(backend, a, b, attrs.transposeA, attrs.transposeB, bias);
    if (attrs.activation === "linear") return product;
    if (relu) {
      reluInPlace(backend, product);
      return product;
    }
    const call = ACTIVATIONS[attrs.activation]!(product, { alpha: inputs.preluActivationWeights, leakyreluAlpha: attrs.leakyreluAlpha });
    const out = stock.get(call.kernel)({ inputs: call.inputs, backend: args.backend, attrs: call.attrs as never }) as TensorInfo;
    dispose(backend, product);
    return out;
  };
  return { kernelName: "_FusedMatMul", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
