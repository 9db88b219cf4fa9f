/**
 * Attention weights: softmax over keys of scale * scores with the future
 * masked, scores [..., T, T] (query i, key j):
 *   softmax_j(scale s + mask),  mask = -1e9 where j > i, else 0
 * (-1e9 before the softmax is a weight of exactly zero after it).
 *
 * On a backend with the fused kernels (webgpu, ../webgpu/causal-softmax.ts;
 * wasm, ../wasm/causal-softmax.ts) one kernel each way instead of seven;
 * elsewhere the same in stock ops, differentiated by TF.js (cpu unchanged).
 */
import { CAUSAL_SOFTMAX, CAUSAL_SOFTMAX_GRAD } from "../webgpu/causal-softmax";
import { hasFusedKernel, runFused } from "./kernels";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

/** [T, T]: 0 on and below the diagonal, -1e9 above (a position sees only its past). */
export function causalMask(tf: Tf, time: number): Tensor {
  return tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([time, time]), -1, 0)), -1e9));
}

function stockCausalSoftmax(tf: Tf, scores: Tensor, scale: number, mask?: Tensor): Tensor {
  const time = scores.shape[scores.shape.length - 1]!;
  return tf.softmax(tf.add(tf.mul(scores, scale), mask ?? causalMask(tf, time)));
}

export const causalSoftmaxReference = {
  forward: stockCausalSoftmax,
  /** scale y (dy - sum_j dy y), y the forward's output */
  backward: (tf: Tf, dy: Tensor, y: Tensor, scale: number): Tensor => tf.tidy(() => tf.mul(tf.mul(y, tf.sub(dy, tf.sum(tf.mul(dy, y), -1, true))), scale)),
};

const fusedOps = new WeakMap<object, Map<number, (scores: Tensor) => Tensor>>();

function fusedCausalSoftmax(tf: Tf, scale: number) {
  let byScale = fusedOps.get(tf);
  if (!byScale) fusedOps.set(tf, (byScale = new Map()));
  let op = byScale.get(scale);
  if (!op) {
    op = tf.customGrad((scores, save) => {
      const y = runFused<Tensor>(tf, CAUSAL_SOFTMAX, { scores: scores as Tensor }, { scale });
      (save as (t: Tensor[]) => void)([y]);
      return { value: y, gradFunc: (dy: Tensor, saved: Tensor[]) => runFused<Tensor>(tf, CAUSAL_SOFTMAX_GRAD, { y: saved[0]!, dy }, { scale }) };
    }) as unknown as (scores: Tensor) => Tensor;
    byScale.set(scale, op);
  }
  return op;
}

/** scores [..., T, T] -> attention weights like scores. `mask` ([T, T], causalMask's) spares the stock path rebuilding it. */
export function causalSoftmax(tf: Tf, scores: Tensor, scale: number, mask?: Tensor): Tensor {
  const [queries, keys] = scores.shape.slice(-2);
  if (queries !== keys) throw new RangeError(`causalSoftmax: scores must be [..., T, T], got [${scores.shape}]`);
  if (hasFusedKernel(tf, CAUSAL_SOFTMAX, [scores])) return fusedCausalSoftmax(tf, scale)(scores);
  return stockCausalSoftmax(tf, scores, scale, mask);
}
