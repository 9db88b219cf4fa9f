/**
 * Sequence parallelism (Korthikanti et al. 2022, "Reducing Activation
 * Recomputation in Large Transformer Models"): the parts of a transformer
 * layer that tensor parallelism leaves replicated (the two layer norms, the
 * two dropouts after the row-parallel layers, the residual adds) run on a
 * 1/t slice of the sequence instead, and each of tensor parallelism's
 * allReduces becomes a reduce-scatter into that slice plus an all-gather out
 * of it (tensor-parallel-regions.ts). `TensorParallelGpt` with
 * `sequenceParallel: true` (tensor-parallel.ts) runs it; this file holds the
 * sequence split and the paper's activation-memory formulas.
 *
 * Activation memory per layer (paper, section 4, 16-bit activations and
 * 1-byte dropout masks; s sequence, b batch, h hidden, t tensor-parallel
 * degree; attention scores recomputed, as with the paper's selective
 * recomputation, so the 5as/h term is gone):
 *   tensor parallel             sbh (10 + 24/t) bytes
 *   tensor + sequence parallel  sbh (34 / t) bytes
 * Adapted to float32 (4 bytes an activation, the two masks still 1 byte):
 *   the 2-byte terms double, 10 = 2+2+4 (norm inputs) + 1+1 (masks) becomes
 *   18 and 24/t becomes 48/t:  sbh (18 + 48/t);  with sequence parallelism sbh (66/t).
 * Without dropout the masks are not kept: sbh (16 + 48/t) and sbh (64/t).
 */
import { checkInteger } from "./validate";

export interface ActivationShape {
  /** Sequence length s (positions per sample). */
  seq: number;
  /** Samples b. */
  batch: number;
  /** Hidden size h (the model's nEmbd). */
  hidden: number;
  /** Tensor-parallel degree t. */
  degree: number;
}

/** The paper's bytes per layer per rank in its 16-bit accounting: sbh(10 + 24/t), or sbh 34/t with sequence parallelism. */
export function paperActivationBytes({ seq, batch, hidden, degree }: ActivationShape, sequenceParallel: boolean): number {
  const sbh = seq * batch * hidden;
  return sequenceParallel ? (sbh * 34) / degree : sbh * (10 + 24 / degree);
}

/** The same accounting for float32 activations and 1-byte masks (`dropout` false: no masks kept). */
export function float32ActivationBytes({ seq, batch, hidden, degree }: ActivationShape, sequenceParallel: boolean, dropout: boolean): number {
  const sbh = seq * batch * hidden;
  const masks = dropout ? 2 : 0; // two masks of sbh bytes, 1 byte an element
  const replicated = 16 + masks; // two layer-norm inputs and two column-layer inputs, 4 bytes each
  const split = 48; // q, k, v, attention output (4 x 4), MLP up and GELU outputs (2 x 16)
  return sequenceParallel ? (sbh * (replicated + split)) / degree : sbh * (replicated + split / degree);
}

/** Throws unless the sequence splits evenly over the degree; names both values. */
export function checkSequenceSplit(seq: number, degree: number): void {
  checkInteger("sequenceParallel: sequence length", seq, 1);
  if (seq % degree !== 0) {
    throw new RangeError(`sequenceParallel: the sequence length (${seq}) must divide by the tensor-parallel degree (${degree})`);
  }
}

/** Positions [start, end) of the sequence that rank `rank` of `degree` holds. */
export function sequenceSlice(seq: number, rank: number, degree: number): [number, number] {
  const part = seq / degree;
  return [rank * part, (rank + 1) * part];
}
