/**
 * Mean softmax cross-entropy of logits [rows, classes] against int32 class
 * ids [rows] for the wasm backend, as JavaScript loops over the heap:
 * DistlabSoftmaxCrossEntropy and DistlabSoftmaxCrossEntropyGrad (the names,
 * and the op around them, are ../fused/cross-entropy.ts's).
 *
 *   loss = mean over rows of (logsumexp(logits_r) - logits_r[label_r])
 *   dlogits_r = dy / rows (softmax(logits_r) - onehot(label_r))
 * A label outside 0..classes-1 is an all-zero one-hot row, as tf.oneHot
 * makes it: the row adds 0 to the loss and gets a zero gradient.
 *
 * Stock ops take about 20 kernels (one-hot, log-softmax, the products, sums
 * and mean, and their gradients); these two take a fraction of their time
 * for the tiny GPT's logits, [768, 65] (figures: docs/compute.md,
 * "Figures behind the code"). Both kernels start from the stock Softmax
 * kernel (XNNPACK's vectorised exp): the loss is then one log per row, the
 * gradient one scaling pass (a JavaScript Math.exp per logit alone cost
 * more than the whole kernel).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from "../webgpu/softmax-cross-entropy";
import { dispose, heapF32, type StockKernels, type WasmBackend } from "./tensor-info";

type Args = Parameters<KernelFunc>[0];

function rowMax(x: Float32Array, o: number, classes: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) if (x[o + c]! > max) max = x[o + c]!;
  return max;
}

/** softmax over the last axis of logits [rows, classes]: the stock kernel (XNNPACK, vectorised exp). */
function softmax(stock: StockKernels, backend: WasmBackend, logits: TensorInfo): TensorInfo {
  return stock.get("Softmax")({ inputs: { logits }, backend: backend as never, attrs: { dim: 1 } }) as TensorInfo;
}

/**
 * Below this a row's softmax of its label may have lost precision to
 * underflow (float32's smallest normal is 1.2e-38): that row's loss is
 * computed from the logits instead.
 */
const SMALLEST_PROBABILITY = 1e-30;

/** DistlabSoftmaxCrossEntropy: inputs logits [rows, classes], labels int32 [rows] -> loss []. */
export function softmaxCrossEntropyKernel(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { logits, labels } = args.inputs as { logits: TensorInfo; labels: TensorInfo };
    const [rows, classes] = logits.shape as [number, number];
    // loss_r = logsumexp(logits_r) - logits_r[label] = -log softmax(logits_r)[label]: one log per row
    const probs = softmax(stock, backend, logits);
    const out = backend.makeOutput([], "float32");
    const p = heapF32(backend, probs), x = heapF32(backend, logits), ids = backend.typedArrayFromHeap(labels) as Int32Array;
    let sum = 0;
    for (let r = 0, o = 0; r < rows; r++, o += classes) {
      const label = ids[r]!;
      if (label < 0 || label >= classes) continue;
      const q = p[o + label]!;
      if (q > SMALLEST_PROBABILITY) { sum -= Math.log(q); continue; }
      const max = rowMax(x, o, classes);
      let total = 0;
      for (let c = 0; c < classes; c++) total += Math.exp(x[o + c]! - max);
      sum += Math.log(total) + max - x[o + label]!;
    }
    heapF32(backend, out)[0] = sum / rows;
    dispose(backend, probs);
    return out;
  };
  return { kernelName: SOFTMAX_CROSS_ENTROPY, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** DistlabSoftmaxCrossEntropyGrad: inputs logits, labels, dy [] -> dlogits like logits. */
export function softmaxCrossEntropyGradKernel(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { logits, labels, dy } = args.inputs as { logits: TensorInfo; labels: TensorInfo; dy: TensorInfo };
    const [rows, classes] = logits.shape as [number, number];
    const out = softmax(stock, backend, logits); // becomes dlogits, in place
    const d = heapF32(backend, out), ids = backend.typedArrayFromHeap(labels) as Int32Array;
    const scale = heapF32(backend, dy)[0]! / rows;
    for (let r = 0, o = 0; r < rows; r++, o += classes) {
      const label = ids[r]!;
      if (label < 0 || label >= classes) { d.fill(0, o, o + classes); continue; }
      for (let c = 0; c < classes; c++) d[o + c] = d[o + c]! * scale;
      d[o + label] = d[o + label]! - scale;
    }
    return out;
  };
  return { kernelName: SOFTMAX_CROSS_ENTROPY_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
