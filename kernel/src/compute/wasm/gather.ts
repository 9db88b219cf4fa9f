/**
 * GatherV2 along axis 0 (an embedding lookup) for the wasm backend.
 *
 * The stock kernel gathers element by element through general strides,
 * which dominated the tiny GPT's token embedding (768 rows of [65, 128];
 * figures: docs/compute.md, "Figures behind the code"). Along axis 0 each index is one contiguous
 * row, copied here with one memcpy (TypedArray.set). An
 * index out of range goes to the stock kernel, which reports it as
 * TF.js does; other axes, batch dimensions and dtypes keep it too.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

export function gatherOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const rank = x.shape.length;
    const along = axis < 0 ? axis + rank : axis;
    if (along !== 0 || (batchDims ?? 0) !== 0 || rank === 0 || (x.dtype !== "float32" && x.dtype !== "int32") || indices.dtype !== "int32") {
      return stock.get("GatherV2")(args) as TensorInfo;
    }
    const rows = x.shape[0]!, width = sizeOf(x.shape.slice(1));
    const ids = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < ids.length; i++) if (ids[i]! < 0 || ids[i]! >= rows) return stock.get("GatherV2")(args) as TensorInfo;
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    // Views after makeOutput: the allocation may have moved the heap.
    const to = backend.typedArrayFromHeap(out) as Float32Array | Int32Array, from = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
    const at = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < at.length; i++) to.set(from.subarray(at[i]! * width, (at[i]! + 1) * width), i * width);
    return out;
  };
  return { kernelName: "GatherV2", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
