/**
 * Pow for the wasm backend with a fast path for small integer exponents.
 *
 * The stock kernel calls the C library's powf per element: tf.pow(x, 3) in
 * the tanh-GELU of a tiny GPT's MLP ([768, 512] per layer) took more of a
 * training step than every op but matMul (figures: docs/compute.md,
 * "Figures behind the code"). With a scalar exponent of 1, 2, 3 or 4 (and its
 * gradient, which is pow(x, exponent - 1)) this multiplies instead, in one
 * pass over the heap. Other exponents keep the stock kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

export function powOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (a.dtype !== "float32" || sizeOf(b.shape) !== 1) return stock.get("Pow")(args) as TensorInfo;
    const exponent = backend.typedArrayFromHeap(b)[0]!;
    if (![1, 2, 3, 4].includes(exponent)) return stock.get("Pow")(args) as TensorInfo;
    const out = backend.makeOutput([...a.shape], "float32");
    // Views after makeOutput: the allocation may have moved the heap.
    const y = backend.typedArrayFromHeap(out) as Float32Array;
    const x = backend.typedArrayFromHeap(a) as Float32Array;
    const n = x.length;
    if (exponent === 1) y.set(x);
    else if (exponent === 2) for (let i = 0; i < n; i++) { const v = x[i]!; y[i] = v * v; }
    else if (exponent === 3) for (let i = 0; i < n; i++) { const v = x[i]!; y[i] = v * v * v; }
    else for (let i = 0; i < n; i++) { const v = x[i]! * x[i]!; y[i] = v * v; }
    return out;
  };
  return { kernelName: "Pow", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
