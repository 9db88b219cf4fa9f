/**
 * Gradients as plain Float32Arrays, one per parameter in `Model.params`
 * order: the form in which they cross the wire and in which every technique
 * transforms them.
 */
import * as tf from "@tensorflow/tfjs";
import type { GradientArray, Model } from "./types";

export interface LocalGradients {
  /** the batch's loss before the update */
  loss: number;
  /** d loss / d param, flattened row-major, in Model.params order */
  grads: GradientArray[];
}

/** Loss and gradients of one batch on this rank (no communication). */
export function localGradients<B>(model: Model<B>, batch: B): LocalGradients {
  const { value, grads } = tf.variableGrads(() => model.loss(batch), model.params);
  const loss = value.dataSync()[0]!;
  const out = model.params.map((p) => {
    const g = grads[p.name];
    if (g === undefined) return new Float32Array(p.size); // a parameter the loss does not use
    return Float32Array.from(g.dataSync());
  });
  value.dispose();
  tf.dispose(grads);
  return { loss, grads: out };
}

/** Concatenates per-parameter arrays into one buffer (for a fused allReduce). */
export function concatGradients(grads: readonly GradientArray[]): Float32Array {
  const total = grads.reduce((sum, g) => sum + g.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const g of grads) {
    out.set(g, offset);
    offset += g.length;
  }
  return out;
}

/** The inverse of concatGradients for the given lengths. */
export function splitGradients(flat: Float32Array, lengths: readonly number[]): Float32Array[] {
  const out: Float32Array[] = [];
  let offset = 0;
  for (const length of lengths) {
    out.push(flat.slice(offset, offset + length));
    offset += length;
  }
  if (offset !== flat.length) throw new RangeError(`splitGradients: lengths add up to ${offset}, the buffer holds ${flat.length}`);
  return out;
}

/** a += b * scale, elementwise, in place. */
export function addScaled(a: Float32Array, b: Float32Array, scale = 1): Float32Array {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]! * scale;
  return a;
}

/** Every parameter as one flat Float32Array (to compare runs or ranks). */
export function flatParameters<B>(model: Model<B>): Float32Array {
  return concatGradients(model.params.map((p) => Float32Array.from(p.dataSync())));
}

/** max |a_i - b_i| */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxAbsDifference: lengths differ (${a.length} vs ${b.length})`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}
