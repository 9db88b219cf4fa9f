/**
 * _FusedMatMul (matMul + bias + activation in one kernel, what tf.fused.matMul
 * and tf.layers' Dense use) for the wasm backend, through the same SIMD
 * kernel as BatchMatMul (batch-mat-mul.ts). With a bias [n] of a multiple of
 * 4 columns and no activation or relu, the product runs alone and one SIMD
 * pass adds the bias to every row and applies relu (simd-kernels.ts's
 * addRows); otherwise the bias starts the product (the WebAssembly kernel's
 * accumulators, or the BLAS's result, cpu-blas.ts), relu runs over the
 * result in place, and other activations call the stock activation kernel
 * on it.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { gemmApplies, gemmProduct } from "./batch-mat-mul";
import { addressOf, dispose, heapF32, simdOf, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

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
    const simd = simdOf(backend);
    if (simd && bias !== undefined && n % 4 === 0 && (attrs.activation === "linear" || attrs.activation === "relu")) {
      // the product alone, then one SIMD pass adds the bias to every row and applies relu (tf.layers.dense's common case)
      const product = gemmProduct(backend, a, b, attrs.transposeA, attrs.transposeB);
      const rows = sizeOf(product.shape) / n;
      if (rows > 0 && n > 0) simd.addRows(addressOf(backend, product), addressOf(backend, bias), rows, 4 * n, attrs.activation === "relu" ? 1 : 0);
      return product;
    }
    const product = gemmProduct(backend, a, b, attrs.transposeA, attrs.transposeB, bias);
    if (attrs.activation === "linear") return product;
    if (attrs.activation === "relu") {
      const values = heapF32(backend, product);
      for (let i = 0; i < values.length; i++) if (values[i]! < 0) values[i] = 0; // NaN stays NaN, as in tf.relu
      return product;
    }
    const call = ACTIVATIONS[attrs.activation]!(product, { alpha: inputs.preluActivationWeights, leakyreluAlpha: attrs.leakyreluAlpha });
    const out = stock.get(call.kernel)({ inputs: call.inputs, backend: args.backend, attrs: call.attrs as never }) as TensorInfo;
    dispose(backend, product);
    return out;
  };
  return { kernelName: "_FusedMatMul", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
