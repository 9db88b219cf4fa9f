/**
 * Attention's causal softmax for the wasm backend, as JavaScript loops over
 * the heap: DistlabCausalSoftmax and DistlabCausalSoftmaxGrad (the names,
 * and the op around them, are ../fused/causal-softmax.ts's).
 *
 *   scores [..., T, T] (query i, key j):  y = softmax_j(scale s + (j > i ? -1e9 : 0))
 *   ds = scale y (dy - sum_j dy y)
 *
 * The stock ops take 7 kernels per attention and step (the scale, the mask
 * add, softmax and their gradients), over [48, 64, 64] for the tiny GPT.
 * Forward: one pass writes scale s, or -1e9 above the diagonal
 * (simd-kernels.ts's causalScores), then the stock Softmax kernel
 * (XNNPACK's vectorised exp, several times faster than a JavaScript
 * Math.exp per weight). A masked key's weight is exactly 0
 * (exp(-1e9 - max) is 0 in float32), so the backward (softmaxGrad) runs
 * over whole rows: those keys add nothing to the sum and get 0. Most of
 * what remains is the Softmax kernel (figures: docs/compute.md,
 * "Figures behind the code"). Key counts not a multiple of 4 use the JavaScript
 * loops below. Where the native passes are built (../cpu-vector.ts), each
 * kernel is one native pass with its own exponential; blocks of keys past the
 * query's are only zeroed.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuVector } from "../cpu-vector";
import { CAUSAL_SOFTMAX, CAUSAL_SOFTMAX_GRAD } from "../webgpu/causal-softmax";
import { addressOf, dispose, heapF32, simdOf, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

type Args = Parameters<KernelFunc>[0];

/** DistlabCausalSoftmax: inputs scores [..., T, T]; attrs scale -> y like scores. */
export function causalSoftmaxKernel(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { scores } = args.inputs as { scores: TensorInfo };
    const scale = (args.attrs as { scale: number }).scale;
    const time = scores.shape[scores.shape.length - 1]!;
    const rows = time === 0 ? 0 : sizeOf(scores.shape) / time;
    const native = rows > 0 ? cpuVector() : undefined;
    if (native) {
      const y = backend.makeOutput([...scores.shape], "float32");
      native.causalSoftmax(heapF32(backend, scores), heapF32(backend, y), time, scale);
      return y;
    }
    const masked = backend.makeOutput([...scores.shape], "float32");
    const simd = time % 4 === 0 ? simdOf(backend) : undefined;
    if (simd) {
      simd.causalScores(addressOf(backend, scores), addressOf(backend, masked), rows, time, 4 * time, scale);
    } else {
      const m = heapF32(backend, masked), s = heapF32(backend, scores);
      for (let r = 0, o = 0; r < rows; r++, o += time) {
        const keys = (r % time) + 1; // query i sees keys 0..i
        for (let j = 0; j < keys; j++) m[o + j] = scale * s[o + j]!;
        m.fill(-1e9, o + keys, o + time);
      }
    }
    const y = stock.get("Softmax")({ inputs: { logits: masked }, backend: args.backend, attrs: { dim: scores.shape.length - 1 } }) as TensorInfo;
    dispose(backend, masked);
    return y;
  };
  return { kernelName: CAUSAL_SOFTMAX, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** DistlabCausalSoftmaxGrad: inputs y (the forward's output), dy; attrs scale -> dscores like y. */
export function causalSoftmaxGradKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { y, dy } = args.inputs as { y: TensorInfo; dy: TensorInfo };
    const scale = (args.attrs as { scale: number }).scale;
    const time = y.shape[y.shape.length - 1]!;
    const rows = time === 0 ? 0 : sizeOf(y.shape) / time;
    const out = backend.makeOutput([...y.shape], "float32");
    const native = rows > 0 ? cpuVector() : undefined;
    if (native) {
      native.causalSoftmaxGrad(heapF32(backend, y), heapF32(backend, dy), heapF32(backend, out), time, scale);
      return out;
    }
    const simd = time % 4 === 0 ? simdOf(backend) : undefined;
    if (simd) {
      // Whole rows: a masked key's y is exactly 0, so it adds nothing to the sum and gets 0.
      simd.softmaxGrad(addressOf(backend, y), addressOf(backend, dy), addressOf(backend, out), rows, 4 * time, scale);
      return out;
    }
    const ds = heapF32(backend, out), ys = heapF32(backend, y), dys = heapF32(backend, dy);
    for (let r = 0, o = 0; r < rows; r++, o += time) {
      const keys = (r % time) + 1;
      let dot = 0;
      for (let j = 0; j < keys; j++) dot += dys[o + j]! * ys[o + j]!;
      for (let j = 0; j < keys; j++) ds[o + j] = scale * (ys[o + j]! * (dys[o + j]! - dot));
      ds.fill(0, o + keys, o + time);
    }
    return out;
  };
  return { kernelName: CAUSAL_SOFTMAX_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
