/**
 * Mean softmax cross-entropy of logits [..., classes] against int32 class
 * ids [...] (the same leading shape), via log-softmax for numerical
 * stability: -mean(sum(onehot(labels) * logSoftmax(logits), -1)).
 *
 * On a backend with the fused kernels (webgpu,
 * ../webgpu/softmax-cross-entropy.ts; wasm, ../wasm/softmax-cross-entropy.ts)
 * one kernel forward and one backward instead of about twenty; elsewhere
 * the same formula in stock ops, differentiated by TF.js.
 */
import { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from "../webgpu/softmax-cross-entropy";
import { hasFusedKernel, runFused } from "./kernels";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Scalar = import("@tensorflow/tfjs").Scalar;

export function stockSoftmaxCrossEntropy(tf: Tf, logits: Tensor, labels: Tensor): Scalar {
  const classes = logits.shape[logits.shape.length - 1]!;
  const flatLogits = tf.reshape(logits, [-1, classes]); // [rows, classes]
  const oneHot = tf.oneHot(tf.cast(tf.reshape(labels, [-1]), "int32"), classes); // [rows, classes]
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(flatLogits)), -1))) as Scalar;
}

/** `stock` is the stock-op form to use where the fused kernels are missing (default stockSoftmaxCrossEntropy), so a model keeps its own. */
export function softmaxCrossEntropy(tf: Tf, logits: Tensor, labels: Tensor, stock: () => Scalar = () => stockSoftmaxCrossEntropy(tf, logits, labels)): Scalar {
  const classes = logits.shape[logits.shape.length - 1]!;
  if (logits.size === 0 || !hasFusedKernel(tf, SOFTMAX_CROSS_ENTROPY, [logits])) return stock();
  const rows = tf.reshape(logits, [-1, classes]); // [rows, classes]
  const ids = tf.cast(tf.reshape(labels, [-1]), "int32"); // [rows] (tf.cast: the GPU bench bundles tfjs-core, without chained ops)
  if (ids.size !== rows.shape[0]) throw new RangeError(`softmaxCrossEntropy: ${ids.size} labels for ${rows.shape[0]} rows of logits`);
  // The labels are not differentiated: they stay out of customGrad's inputs, so a new op per call.
  const op = tf.customGrad((x, save) => {
    (save as (t: Tensor[]) => void)([x as Tensor]);
    return {
      value: runFused<Scalar>(tf, SOFTMAX_CROSS_ENTROPY, { logits: x as Tensor, labels: ids }),
      gradFunc: (dy: Tensor, saved: Tensor[]) => runFused<Tensor>(tf, SOFTMAX_CROSS_ENTROPY_GRAD, { logits: saved[0]!, labels: ids, dy }),
    };
  }) as unknown as (x: Tensor) => Scalar;
  return op(rows);
}
