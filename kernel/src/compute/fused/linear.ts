/**
 * x w + bias for x [rows, in], w [in, out], bias [out].
 *
 * On webgpu, tf.fused.matMul adds the bias in the product's kernel: one
 * dispatch instead of two forward; for large x the gradients are products
 * of untransposed operands, the form TF.js's webgpu backend runs fast
 * (./mat-mul.ts). Elsewhere matMul then add: on wasm the fused form was the
 * slower one for the tiny GPT (figures: docs/compute.md, "Figures behind
 * the code").
 */
import { untransposedLinear, wantsUntransposed } from "./mat-mul";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Tensor2D = import("@tensorflow/tfjs").Tensor2D;

export function linear(tf: Tf, x: Tensor, w: Tensor, bias: Tensor): Tensor {
  if (wantsUntransposed(tf, x)) return untransposedLinear(tf, x, w, bias);
  if (tf.getBackend() === "webgpu") return tf.fused.matMul({ a: x as Tensor2D, b: w as Tensor2D, bias });
  return tf.add(tf.matMul(x, w), bias);
}
