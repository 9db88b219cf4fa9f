/**
 * UnsortedSegmentSum for the wasm backend, which has none: it is the
 * gradient of tf.gather (an embedding lookup's backward pass scatters the
 * output gradient rows back onto the table), so without it a model with an
 * embedding cannot train on wasm at all.
 *
 * x: [n, ...inner] float32 (or int32), segmentIds: [n] int32,
 * out: [numSegments, ...inner], out[s] = sum of x[i] where segmentIds[i] = s.
 * Ids outside [0, numSegments) are dropped, as in TensorFlow.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { sizeOf, type WasmBackend } from "./tensor-info";

export function unsortedSegmentSumOverride(): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const { numSegments } = args.attrs as { numSegments: number };
    const rows = sizeOf(segmentIds.shape);
    const inner = rows === 0 ? 0 : sizeOf(x.shape) / rows;
    const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
    const out = backend.makeOutput(outShape, x.dtype);
    // Views taken after makeOutput: the allocation may have grown the heap.
    const values = backend.typedArrayFromHeap(out);
    values.fill(0);
    const source = backend.typedArrayFromHeap(x);
    const ids = backend.typedArrayFromHeap(segmentIds);
    for (let i = 0; i < rows; i++) {
      const segment = ids[i]!;
      if (segment < 0 || segment >= numSegments) continue;
      const from = i * inner;
      const to = segment * inner;
      for (let j = 0; j < inner; j++) values[to + j] += source[from + j]!;
    }
    return out;
  };
  return { kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
