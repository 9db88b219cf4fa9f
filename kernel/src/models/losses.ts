/** The loss heads the models share. */
import * as tf from "@tensorflow/tfjs";

/** Mean squared error: prediction and target [batch, outputs]. */
export function meanSquaredError(prediction: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(prediction, target))) as tf.Scalar;
}

/**
 * Mean cross-entropy of logits [..., classes] against int32 class ids [...]
 * (the same leading shape), via log-softmax for numerical stability.
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const classes = logits.shape[logits.shape.length - 1]!;
  const flatLogits = tf.reshape(logits, [-1, classes]); // [rows, classes]
  const oneHot = tf.oneHot(tf.reshape(labels, [-1]).toInt(), classes); // [rows, classes]
  const logProbabilities = tf.logSoftmax(flatLogits);
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logProbabilities), -1))) as tf.Scalar;
}
