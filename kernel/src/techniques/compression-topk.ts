/**
 * Top-k sparsification with error feedback (Lin et al., ICLR 2018, "Deep
 * Gradient Compression"; Stich et al. 2018).
 *
 * Each rank adds the residual it kept back last time to its gradient,
 * keeps the k largest entries by magnitude and remembers the rest:
 *   a = g + e;   s = topk(a);   e <- a - s
 * Ranks allGather their k (index, value) pairs, 8 bytes each, and every rank
 * averages the sparse vectors. Without error feedback the small entries are
 * lost for good and training stalls at a worse loss.
 * Bytes per rank per step: 8k with k = max(1, ceil(ratio * n)).
 */
import { concatGradients, splitGradients } from "./gradients";
import type { Collectives, GradientArray, GradientSync } from "./types";
import { checkBoolean, checkKnownKeys, checkRange } from "./validate";

export interface TopKOptions {
  /** Fraction of gradient entries each rank sends per step, in (0, 1]. Default 0.01 (top 1%). */
  ratio: number;
  /** Keep what was not sent and add it to the next step's gradient. Default true. */
  errorFeedback: boolean;
}

export const TOP_K_DEFAULTS: TopKOptions = { ratio: 0.01, errorFeedback: true };

export function validateTopKOptions(options: Partial<TopKOptions>): TopKOptions {
  checkKnownKeys("topK", options, TOP_K_DEFAULTS);
  const o = { ...TOP_K_DEFAULTS, ...options };
  checkRange("topK.ratio", o.ratio, 0, 1, { low: true });
  checkBoolean("topK.errorFeedback", o.errorFeedback);
  return o;
}

/** Entries kept out of n. */
export function topKCount(n: number, ratio: number): number {
  return Math.min(n, Math.max(1, Math.ceil(ratio * n)));
}

/** Indices of the k entries of largest magnitude (ties broken by position), ascending. */
export function topKIndices(values: Float32Array, k: number): Uint32Array {
  const magnitudes = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) magnitudes[i] = Math.abs(values[i]!);
  const threshold = kthLargest(Float32Array.from(magnitudes), k);
  const out = new Uint32Array(k);
  let count = 0;
  for (let i = 0; i < values.length && count < k; i++) if (magnitudes[i]! > threshold) out[count++] = i;
  for (let i = 0; i < values.length && count < k; i++) if (magnitudes[i] === threshold) out[count++] = i;
  return out.sort();
}

/** Quickselect, O(n) expected; reorders `a`. */
function kthLargest(a: Float32Array, k: number): number {
  let low = 0;
  let high = a.length - 1;
  const target = k - 1; // position in descending order
  while (low < high) {
    const pivot = a[(low + high) >> 1]!;
    let i = low;
    let j = high;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) high = j;
    else if (target >= i) low = i;
    else return a[target]!;
  }
  return a[target]!;
}

export class TopKCompression implements GradientSync {
  readonly name: string;
  readonly options: TopKOptions;
  /** e: what was not sent yet, [n] over all parameters */
  #residual: Float32Array | undefined;

  constructor(options: Partial<TopKOptions> = {}) {
    this.options = validateTopKOptions(options);
    this.name = `top-${+(this.options.ratio * 100).toPrecision(3)}%${this.options.errorFeedback ? " + EF" : ""}`;
  }

  async sync(grads: readonly GradientArray[], comm: Collectives, _shapes?: readonly (readonly number[])[]): Promise<GradientArray[]> {
    const accumulated = concatGradients(grads); // a = g (+ e below), [n]
    const n = accumulated.length;
    if (this.options.errorFeedback) {
      this.#residual ??= new Float32Array(n);
      for (let i = 0; i < n; i++) accumulated[i]! += this.#residual[i]!;
    }
    const k = topKCount(n, this.options.ratio);
    const indices = topKIndices(accumulated, k);
    // One message: k indices then the k values' float32 bits, 8k bytes.
    const message = new Uint32Array(2 * k);
    const values = new Float32Array(message.buffer, 4 * k, k);
    message.set(indices);
    indices.forEach((index, j) => (values[j] = accumulated[index]!));
    if (this.options.errorFeedback) {
      this.#residual!.set(accumulated);
      for (const index of indices) this.#residual![index] = 0;
    }
    const gathered = comm.size > 1 ? await comm.allGather(message) : message; // [size * 2k]
    const mean = new Float32Array(n);
    for (let r = 0; r < comm.size; r++) {
      const base = r * 2 * k;
      const rankValues = new Float32Array(gathered.buffer, gathered.byteOffset + 4 * (base + k), k);
      for (let j = 0; j < k; j++) mean[gathered[base + j]!]! += rankValues[j]! / comm.size;
    }
    return splitGradients(mean, grads.map((g) => g.length));
  }

  expectedPayloadBytes(shapes: readonly (readonly number[])[]): number {
    const n = shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
    return 8 * topKCount(n, this.options.ratio);
  }
}
