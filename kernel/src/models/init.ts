/** Seeded parameter initialisation, independent of the tf backend, so every rank starts from the same weights. */
import * as tf from "@tensorflow/tfjs";
import { normalArray, type Random } from "../data/random";

/** A trainable variable of `shape` with N(0, std^2) entries drawn from `random`. */
export function normalVariable(random: Random, shape: number[], std: number): tf.Variable {
  const size = shape.reduce((a, b) => a * b, 1);
  // tf.variable copies its initial value: made inside tidy, the initial tensor is freed
  return tf.tidy(() => tf.variable(tf.tensor(normalArray(random, size, std), shape), true));
}

export function constantVariable(shape: number[], value: number): tf.Variable {
  return tf.tidy(() => tf.variable(tf.fill(shape, value), true));
}

/** Number of scalars in the parameters. */
export function parameterCount(params: readonly tf.Variable[]): number {
  return params.reduce((sum, p) => sum + p.size, 0);
}
