/**
 * The pieces of the tiny GPT's tensor-parallel layers (tensor-parallel.ts):
 * how each full parameter is cut between the t ranks (whole, by columns, by
 * rows), and the per-layer math between two communication points, on
 * activations laid out [seq, batch, C].
 */
import * as tf from "@tensorflow/tfjs";
import { causalAttention, layerNorm, linear } from "../compute/fused";

/** How a full parameter is cut: kept whole, by columns (the last axis, in `parts` equal parts each split), or by rows. */
export type Split = { kind: "replicated" } | { kind: "columns"; parts: number } | { kind: "rows" };

/** Offsets of a block's parameters in the tiny GPT's params (models/tiny-gpt.ts). */
export const BLOCK = { g1: 0, b1: 1, wQkv: 2, bQkv: 3, wProj: 4, bProj: 5, g2: 6, b2: 7, wUp: 8, bUp: 9, wDown: 10, bDown: 11 } as const;
export const BLOCK_SPLITS: Split[] = [
  { kind: "replicated" }, { kind: "replicated" },
  { kind: "columns", parts: 3 }, { kind: "columns", parts: 3 }, // q | k | v, each cut into heads
  { kind: "rows" }, { kind: "replicated" },
  { kind: "replicated" }, { kind: "replicated" },
  { kind: "columns", parts: 1 }, { kind: "columns", parts: 1 },
  { kind: "rows" }, { kind: "replicated" },
];
export const EMBEDDING_PARAMS = 2; // wte, wpe
const LN_EPSILON = 1e-5;

/** This rank's part of a full parameter. */
export function shardTensor(full: tf.Tensor, split: Split, rank: number, degree: number): tf.Tensor {
  return tf.tidy(() => {
    if (split.kind === "replicated") return tf.clone(full);
    if (split.kind === "rows") {
      const rows = full.shape[0]! / degree;
      return tf.slice(full, [rank * rows, ...full.shape.slice(1).map(() => 0)], [rows, ...full.shape.slice(1)]);
    }
    const last = full.shape.length - 1;
    const width = full.shape[last]! / split.parts; // one of q, k, v (or the whole)
    const part = width / degree;
    const pieces = Array.from({ length: split.parts }, (_, j) => {
      const begin = full.shape.map(() => 0);
      begin[last] = j * width + rank * part;
      const size = [...full.shape];
      size[last] = part;
      return tf.slice(full, begin, size);
    });
    return pieces.length === 1 ? pieces[0]! : tf.concat(pieces, last);
  });
}

/** x [seq, batch, in] times w [in, out] (+ b [out]) -> [seq, batch, out]. */
export function linear3d(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const [seq, batch, width] = x.shape as [number, number, number];
  const flat = tf.reshape(x, [seq * batch, width]);
  const y = b === undefined ? tf.matMul(flat as tf.Tensor2D, w as tf.Tensor2D) : linear(tf, flat, w, b);
  return tf.reshape(y, [seq, batch, w.shape[1]!]);
}

/** Causal attention of this rank's heads: qkv [seq, batch, 3c] (q | k | v of `heads` heads) -> [seq, batch, c]. */
export function attentionCore(qkv: tf.Tensor, heads: number): tf.Tensor {
  const seq = qkv.shape[0]!;
  const out = causalAttention(tf, tf.transpose(qkv, [1, 0, 2]), { time: seq, heads }); // [batch, seq, c]
  return tf.transpose(out, [1, 0, 2]);
}

export const norm = (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor): tf.Tensor => layerNorm(tf, x, gain, bias, LN_EPSILON);

/** d/d inputs of f at inputs, given dy (TF.js recomputes f's forward to differentiate it). */
export function vjp(f: (...inputs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  return tf.grads(f)(inputs, dy);
}
