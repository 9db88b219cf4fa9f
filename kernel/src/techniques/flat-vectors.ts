/**
 * Flat float32 vectors of a model's parameters, shared by the asynchronous
 * and local-update techniques (parameter server, local SGD, gossip,
 * stragglers): what a rank sends is one Float32Array of all parameters (or
 * gradients) back to back in `Model.params` order, so one message per step
 * carries the whole model.
 */
import * as tf from "@tensorflow/tfjs";
import { concatGradients, localGradientsOf } from "./gradients";
import type { BatchFn, Model } from "./types";

/** Loss and the flat gradient [P] of one batch; the batch's tensors are freed. */
export async function flatStepGradients<B>(model: Model<B>, batches: BatchFn<B>, step: number, batchSize: number): Promise<{ loss: number; grads: Float32Array }> {
  const { loss, grads } = await localGradientsOf(model, () => batches(step, batchSize));
  return { loss, grads: concatGradients(grads) };
}

/** Number of scalars over all tensors. */
export function totalSize(tensors: readonly { size: number }[]): number {
  return tensors.reduce((sum, t) => sum + t.size, 0);
}

/** All tensors' values back to back, in order: [sum of sizes] float32 (read without blocking: GPU ranks cannot read synchronously). */
export async function flattenTensors(tensors: readonly tf.Tensor[], out?: Float32Array): Promise<Float32Array> {
  const flat = out ?? new Float32Array(totalSize(tensors));
  if (flat.length !== totalSize(tensors)) throw new RangeError(`flattenTensors: out holds ${flat.length} values, tensors hold ${totalSize(tensors)}`);
  const values = await Promise.all(tensors.map((t) => t.data()));
  let offset = 0;
  values.forEach((v, i) => {
    flat.set(v as Float32Array, offset);
    offset += tensors[i]!.size;
  });
  return flat;
}

/** Writes a flat vector back into the variables (inverse of flattenTensors). */
export function assignFlat(params: readonly tf.Variable[], flat: Float32Array): void {
  if (flat.length !== totalSize(params)) throw new RangeError(`assignFlat: ${flat.length} values for ${totalSize(params)} parameters`);
  let offset = 0;
  for (const p of params) {
    const values = flat.slice(offset, offset + p.size);
    tf.tidy(() => p.assign(tf.tensor(values, p.shape, "float32")));
    offset += p.size;
  }
}

/** Squared L2 norm of x[start, end), accumulated in float64. */
export function squaredNorm(x: Float32Array, start = 0, end = x.length): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum += x[i]! * x[i]!;
  return sum;
}
