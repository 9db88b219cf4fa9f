/**
 * Tanh for the wasm backend through the vectorised Sigmoid kernel.
 *
 * The stock Tanh calls the C library's tanhf per element (a tiny GPT's
 * tanh-GELU runs it once per layer on [768, 512]), while the stock Sigmoid
 * goes through XNNPACK's vectorised kernel, many times faster for the same
 * size (figures: docs/compute.md, "Figures behind the code"). tanh(x) = 2 sigmoid(2x) - 1; near 0 that
 * difference cancels to an absolute error of about 1e-7, so for |x| < 0.01
 * the odd Taylor series x - x^3/3 + 2x^5/15 (exact to float32 there) is used
 * instead, keeping the relative error small too.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { dispose, type StockKernels, type WasmBackend } from "./tensor-info";

export function tanhOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype !== "float32") return stock.get("Tanh")(args) as TensorInfo;
    const doubled = backend.makeOutput([...x.shape], "float32");
    {
      const from = backend.typedArrayFromHeap(x) as Float32Array;
      const to = backend.typedArrayFromHeap(doubled) as Float32Array;
      for (let i = 0; i < from.length; i++) to[i] = 2 * from[i]!;
    }
    const out = stock.get("Sigmoid")({ inputs: { x: doubled }, backend: args.backend, attrs: {} }) as TensorInfo;
    dispose(backend, doubled);
    // Views after the Sigmoid kernel's allocation: the heap may have moved.
    const input = backend.typedArrayFromHeap(x) as Float32Array;
    const y = backend.typedArrayFromHeap(out) as Float32Array;
    for (let i = 0; i < y.length; i++) {
      const v = input[i]!;
      if (v < 0.01 && v > -0.01) {
        const v2 = v * v;
        y[i] = v * (1 - v2 * (1 / 3 - v2 * (2 / 15)));
      } else {
        y[i] = 2 * y[i]! - 1;
      }
    }
    return out;
  };
  return { kernelName: "Tanh", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
