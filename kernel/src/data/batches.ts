/**
 * Turns rows of a dataset or windows of a token stream into the tensors a
 * model's loss takes. The caller disposes them (or runs inside tf.tidy).
 */
import * as tf from "@tensorflow/tfjs";
import { seededRandom, type Random } from "./random";
import { selectRows, type Dataset } from "./synthetic";

/** What the MLP's loss takes: x [batch, inputs]; y [batch, outputs] (float) or [batch] (int32 class ids). */
export interface TensorBatch {
  x: tf.Tensor;
  y: tf.Tensor;
}

export function datasetBatch(data: Dataset, indices: readonly number[]): TensorBatch {
  const { x, y } = selectRows(data, indices);
  return {
    x: tf.tensor2d(x, [indices.length, data.inputs]),
    y: data.task === "regression" ? tf.tensor2d(y as Float32Array, [indices.length, data.outputs]) : tf.tensor1d(y as Int32Array, "int32"),
  };
}

/**
 * Language-model batches: `batch` windows of `blockSize + 1` tokens, x is the
 * first blockSize, y the same shifted by one (the next character).
 * Starts are drawn from `random` (seed it per rank and step for different data per rank).
 */
export function tokenBatch(tokens: Int32Array, batch: number, blockSize: number, random: Random): TensorBatch {
  if (tokens.length <= blockSize + 1) throw new RangeError(`tokenBatch: need more than blockSize + 1 = ${blockSize + 1} tokens, got ${tokens.length}`);
  const x = new Int32Array(batch * blockSize); // [batch, time]
  const y = new Int32Array(batch * blockSize); // [batch, time]
  for (let b = 0; b < batch; b++) {
    const start = Math.floor(random() * (tokens.length - blockSize - 1));
    x.set(tokens.subarray(start, start + blockSize), b * blockSize);
    y.set(tokens.subarray(start + 1, start + blockSize + 1), b * blockSize);
  }
  return { x: tf.tensor2d(x, [batch, blockSize], "int32"), y: tf.tensor2d(y, [batch, blockSize], "int32") };
}

/** A seeded stream of token batches: the same seed gives the same batches on every run. */
export function tokenBatches(tokens: Int32Array, batch: number, blockSize: number, seed: number): () => TensorBatch {
  const random = seededRandom(seed);
  return () => tokenBatch(tokens, batch, blockSize, random);
}

/** Splits a batch along axis 0 into `parts` equal pieces (micro-batches or per-rank shards). */
export function splitBatch(batch: TensorBatch, parts: number): TensorBatch[] {
  const rows = batch.x.shape[0]!;
  if (!Number.isInteger(parts) || parts < 1 || rows % parts !== 0) {
    throw new RangeError(`splitBatch: parts must divide the batch of ${rows} rows, got ${parts}`);
  }
  const xs = tf.split(batch.x, parts, 0);
  const ys = tf.split(batch.y, parts, 0);
  return xs.map((x, i) => ({ x, y: ys[i]! }));
}
