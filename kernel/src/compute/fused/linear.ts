/**
 * x w + bias for x [rows, in], w [in, out], bias [out].
 *
 * On webgpu, tf.fused.matMul adds the bias in the product's kernel: one
 * dispatch instead of two forward (the gradients are the same kernels).
 * Elsewhere matMul then add: on wasm the fused form was the slower one for
 * the tiny GPT (figures: docs/compute.md, "Figures behind the code").
 */
type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Tensor2D = import("@tensorflow/tfjs").Tensor2D;

export function linear(tf: Tf, x: Tensor, w: Tensor, bias: Tensor): Tensor {
  if (tf.getBackend() === "webgpu") return tf.fused.matMul({ a: x as Tensor2D, b: w as Tensor2D, bias });
  return tf.add(tf.matMul(x, w), bias);
}
