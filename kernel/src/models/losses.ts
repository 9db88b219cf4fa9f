/** The loss heads the models share. */
import * as tf from "@tensorflow/tfjs";
import { softmaxCrossEntropy as fusedSoftmaxCrossEntropy } from "../compute/fused";

/** Mean squared error: prediction and target [batch, outputs]. */
export function meanSquaredError(prediction: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(prediction, target))) as tf.Scalar;
}

/**
 * Mean cross-entropy of logits [..., classes] against int32 class ids [...]
 * (the same leading shape), via log-softmax for numerical stability; one
 * fused kernel each way on webgpu (compute/fused/cross-entropy.ts).
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return fusedSoftmaxCrossEntropy(tf, logits, labels);
}
