/**
 * Gradients as plain Float32Arrays, one per parameter in `Model.params`
 * order: the form in which they cross the wire and in which every technique
 * transforms them.
 *
 * Every read of a tensor here is asynchronous (`await t.data()`): on a GPU
 * rank (TF.js webgpu in Node) a synchronous read of a tensor that lives on
 * the GPU cannot work, and the async read lets all of a step's gradients
 * be copied back in one queue submission.
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
export function localGradients<B>(model: Model<B>, batch: B): Promise<LocalGradients> {
  return localGradientsOf(model, () => batch);
}

/**
 * Like localGradients, for a batch made by `makeBatch`: its tensors are
 * made and freed inside the tape's tidy, so the caller keeps nothing.
 */
export async function localGradientsOf<B>(model: Model<B>, makeBatch: () => B): Promise<LocalGradients> {
  // Synchronous part: the whole tape in one tidy; only the loss and the gradients leave it.
  const { value, grads } = tf.tidy(() => tf.variableGrads(() => model.loss(makeBatch()), model.params));
  try {
    const [lossValues, ...gradValues] = await Promise.all([value.data(), ...model.params.map((p) => grads[p.name]?.data())]);
    const out = model.params.map((p, i) => {
      const g = gradValues[i];
      if (g === undefined) return new Float32Array(p.size); // a parameter the loss does not use
      return Float32Array.from(g as Float32Array);
    });
    return { loss: lossValues![0]!, grads: out };
  } finally {
    value.dispose();
    tf.dispose(grads);
  }
}

/** The values of `tensors`, read without blocking (one copy each, float32). */
export async function readTensors(tensors: readonly tf.Tensor[]): Promise<Float32Array[]> {
  const values = await Promise.all(tensors.map((t) => t.data()));
  return values.map((v) => Float32Array.from(v as Float32Array));
}

/** The first value of a tensor (a loss), read without blocking; disposes the tensor. */
export async function scalarValue(t: tf.Tensor): Promise<number> {
  try {
    return (await t.data())[0]!;
  } finally {
    t.dispose();
  }
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
export async function flatParameters<B>(model: Model<B>): Promise<Float32Array> {
  return concatGradients(await readTensors(model.params));
}

/** max |a_i - b_i| */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxAbsDifference: lengths differ (${a.length} vs ${b.length})`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}
