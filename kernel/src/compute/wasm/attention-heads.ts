/**
 * Attention's head layout for the wasm backend: DistlabToHeads and
 * DistlabFromHeads, new kernels used by ../fused/causal-attention.ts on
 * wasm (its products stay batched matMuls, the BatchMatMul kernel's job:
 * q k^T and p v are about 75 MFLOP per layer and step for the tiny GPT).
 *
 *   to heads    x [batch * T, parts * C] -> parts tensors [batch * heads, T, hs]
 *               part p, head h of row (b, t) = x[b T + t, p C + h hs .. p C + (h + 1) hs]
 *   from heads  the inverse: parts tensors [batch * heads, T, hs] -> [batch * T, parts * C]
 *
 * parts is 3 for the packed q|k|v projection (forward) and its gradient,
 * 1 for the attention's output (the heads side by side again) and its
 * gradient. Each is one copy of the data (simd-kernels.ts's heads, 16
 * bytes at a time, for head sizes that are multiples of 4; JavaScript
 * otherwise). The stock ops take a split, a reshape and a transpose per
 * part (a concat for the gradient), each a copy through general strides;
 * these 16 calls replace them at a fraction of the time (figures:
 * docs/compute.md, "Figures behind the code").
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { addressOf, heapF32, simdOf, sizeOf, type WasmBackend } from "./tensor-info";

export const TO_HEADS = "DistlabToHeads";
export const FROM_HEADS = "DistlabFromHeads";

type Args = Parameters<KernelFunc>[0];
interface HeadAttrs { time: number; heads: number }

/** Copies between the row layout (row stride `width`, part offset p C) and part p's head layout, in the direction `toHeads`. */
function copyPart(rows: Float32Array, headsView: Float32Array, part: number, width: number, time: number, heads: number, headSize: number, toHeads: boolean): void {
  const channels = heads * headSize;
  const count = rows.length / width; // batch * T
  for (let row = 0; row < count; row++) {
    const b = (row / time) | 0, t = row - b * time;
    for (let h = 0; h < heads; h++) {
      const from = row * width + part * channels + h * headSize;
      const to = ((b * heads + h) * time + t) * headSize;
      if (toHeads) for (let d = 0; d < headSize; d++) headsView[to + d] = rows[from + d]!;
      else for (let d = 0; d < headSize; d++) rows[from + d] = headsView[to + d]!;
    }
  }
}

/** DistlabToHeads: inputs x [batch * T, parts * C]; attrs time, heads, parts -> parts tensors [batch * heads, T, C / heads]. */
export function toHeadsKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo[] => {
    const backend = args.backend as unknown as WasmBackend;
    const { x } = args.inputs as { x: TensorInfo };
    const { time, heads, parts } = args.attrs as unknown as HeadAttrs & { parts: number };
    const width = x.shape[x.shape.length - 1]!;
    const headSize = width / parts / heads;
    const batch = sizeOf(x.shape) / width / time;
    const outs = Array.from({ length: parts }, () => backend.makeOutput([batch * heads, time, headSize], "float32"));
    const simd = headSize % 4 === 0 ? simdOf(backend) : undefined;
    if (simd) {
      const from = addressOf(backend, x);
      outs.forEach((out, p) => simd.heads(from, addressOf(backend, out), batch * time, time, heads, 4 * headSize, 4 * width, 4 * p * heads * headSize, 1));
      return outs;
    }
    const rows = heapF32(backend, x);
    outs.forEach((out, p) => copyPart(rows, heapF32(backend, out), p, width, time, heads, headSize, true));
    return outs;
  };
  return { kernelName: TO_HEADS, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** DistlabFromHeads: inputs x0 .. x{parts-1}, each [batch * heads, T, hs]; attrs time, heads -> [batch * T, parts * heads * hs]. */
export function fromHeadsKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const inputs = args.inputs as Record<string, TensorInfo>;
    const parts = Object.keys(inputs).length;
    const pieces = Array.from({ length: parts }, (_, p) => inputs[`x${p}`]!);
    const { time, heads } = args.attrs as unknown as HeadAttrs;
    const [batchHeads, , headSize] = pieces[0]!.shape as [number, number, number];
    const width = parts * heads * headSize;
    const count = (batchHeads / heads) * time;
    const out = backend.makeOutput([count, width], "float32");
    const simd = headSize % 4 === 0 ? simdOf(backend) : undefined;
    if (simd) {
      const to = addressOf(backend, out);
      pieces.forEach((piece, p) => simd.heads(to, addressOf(backend, piece), count, time, heads, 4 * headSize, 4 * width, 4 * p * heads * headSize, 0));
      return out;
    }
    const rows = heapF32(backend, out);
    pieces.forEach((piece, p) => copyPart(rows, heapF32(backend, piece), p, width, time, heads, headSize, false));
    return out;
  };
  return { kernelName: FROM_HEADS, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
