/**
 * Add of two float32 tensors of one shape for the wasm backend, as one native
 * pass (../cpu-vector.ts) where the addon is built; every other Add
 * (broadcasting, other dtypes, no addon) goes to the stock kernel.
 *
 * Same-shape adds are a transformer's residual connections and the
 * backward pass's gradient sums: 16 a tiny-GPT step, each [768, 128]. The
 * stock kernel's loop took about 90 us each inside a step, the native pass
 * about a third of that (docs/compute.md, "Elementwise passes in native code").
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuVector } from "../cpu-vector";
import { heapF32, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

export function addOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    const native = sameShape && a.dtype === "float32" && b.dtype === "float32" && sizeOf(a.shape) > 0 ? cpuVector() : undefined;
    if (!native) return stock.get("Add")(args) as TensorInfo;
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput([...a.shape], "float32");
    native.add(heapF32(backend, a), heapF32(backend, b), heapF32(backend, out));
    return out;
  };
  return { kernelName: "Add", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
