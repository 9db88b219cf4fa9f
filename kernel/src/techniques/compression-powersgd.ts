/**
 * PowerSGD (Vogels et al., NeurIPS 2019): a rank-r approximation of each
 * gradient matrix by one step of power iteration, with error feedback.
 *
 * For each parameter viewed as a matrix M [n, m] (first dimension by the
 * product of the rest), with e its residual and Q [m, r] kept from the last
 * step (warm start):
 *   M <- g + e
 *   P = M Q                        [n, r]   allReduce(mean) #1
 *   P <- orthonormalize(P)         Gram-Schmidt on the columns
 *   Q = M^T P                      [m, r]   allReduce(mean) #2
 *   approx = P Q^T;   e <- M - approx
 * Because P and Q are averaged, P Q^T is the same rank-r approximation of
 * the ranks' mean on every rank. Vectors (biases) are sent as they are,
 * inside allReduce #1. Two allReduces per step, and per matrix (n + m) r
 * numbers instead of n m: bytes = 4 (sum (n + m) r + sum of vector lengths),
 * with r = min(rank, n, m).
 */
import { normalArray, seededRandom } from "../data/random";
import type { Collectives, GradientArray, GradientSync } from "./types";
import { checkBoolean, checkInteger, checkKnownKeys } from "./validate";

export interface PowerSgdOptions {
  /** Rank r of the approximation (clipped to min(n, m) per matrix). Default 2. */
  rank: number;
  /** Add last step's approximation error to this step's gradient; PowerSGD needs it to converge. Default true. */
  errorFeedback: boolean;
  /** Start each step's power iteration from last step's Q; else from fresh random Q. Default true. */
  warmStart: boolean;
  /** Seed of the initial Q, the same on every rank. Default 0. */
  seed: number;
}

export const POWER_SGD_DEFAULTS: PowerSgdOptions = { rank: 2, errorFeedback: true, warmStart: true, seed: 0 };

export function validatePowerSgdOptions(options: Partial<PowerSgdOptions>): PowerSgdOptions {
  checkKnownKeys("powerSgd", options, POWER_SGD_DEFAULTS);
  const o = { ...POWER_SGD_DEFAULTS, ...options };
  checkInteger("powerSgd.rank", o.rank, 1);
  checkBoolean("powerSgd.errorFeedback", o.errorFeedback);
  checkBoolean("powerSgd.warmStart", o.warmStart);
  checkInteger("powerSgd.seed", o.seed, 0);
  return o;
}

/** A parameter shape as a matrix [rows, cols]; vectors and scalars give undefined (sent uncompressed). */
export function asMatrix(shape: readonly number[]): [number, number] | undefined {
  if (shape.length < 2) return undefined;
  return [shape[0]!, shape.slice(1).reduce((a, b) => a * b, 1)];
}

/** out[n, r] = a[n, m] b[m, r], row-major; r is small (the rank), so the inner loop runs over it. */
function matMul(a: Float32Array, b: Float32Array, n: number, m: number, r: number): Float32Array {
  const out = new Float32Array(n * r);
  for (let i = 0; i < n; i++) {
    const row = i * m;
    for (let k = 0; k < m; k++) {
      const aik = a[row + k]!;
      for (let j = 0; j < r; j++) out[i * r + j]! += aik * b[k * r + j]!;
    }
  }
  return out;
}

/** out[m, r] = a^T b for a[n, m], b[n, r]: walks a row by row (contiguous) instead of column by column. */
function matMulTransposedA(a: Float32Array, b: Float32Array, n: number, m: number, r: number): Float32Array {
  const out = new Float32Array(m * r);
  for (let k = 0; k < n; k++) {
    const row = k * m;
    for (let i = 0; i < m; i++) {
      const aki = a[row + i]!;
      for (let j = 0; j < r; j++) out[i * r + j]! += aki * b[k * r + j]!;
    }
  }
  return out;
}

/** out[n, m] = p[n, r] q[m, r]^T */
function outerProduct(p: Float32Array, q: Float32Array, n: number, m: number, r: number): Float32Array {
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let sum = 0;
      for (let k = 0; k < r; k++) sum += p[i * r + k]! * q[j * r + k]!;
      out[i * m + j] = sum;
    }
  }
  return out;
}

/** Gram-Schmidt on the r columns of p [n, r], in place. */
export function orthonormalizeColumns(p: Float32Array, n: number, r: number): void {
  for (let j = 0; j < r; j++) {
    for (let prev = 0; prev < j; prev++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += p[i * r + j]! * p[i * r + prev]!;
      for (let i = 0; i < n; i++) p[i * r + j]! -= dot * p[i * r + prev]!;
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += p[i * r + j]! ** 2;
    norm = Math.sqrt(norm) + 1e-8; // a zero column stays zero instead of NaN
    for (let i = 0; i < n; i++) p[i * r + j]! /= norm;
  }
}

export class PowerSgdCompression implements GradientSync {
  readonly name: string;
  readonly options: PowerSgdOptions;
  #q = new Map<number, Float32Array>();
  #residual = new Map<number, Float32Array>();
  #random = seededRandom(0);

  constructor(options: Partial<PowerSgdOptions> = {}) {
    this.options = validatePowerSgdOptions(options);
    this.name = `powersgd r=${this.options.rank}${this.options.errorFeedback ? " + EF" : ""}`;
    this.#random = seededRandom(this.options.seed);
  }

  async sync(grads: readonly GradientArray[], comm: Collectives, shapes: readonly (readonly number[])[]): Promise<GradientArray[]> {
    if (shapes.length !== grads.length) throw new RangeError(`powerSgd: ${shapes.length} shapes for ${grads.length} gradients`);
    const layout = grads.map((_, t) => {
      const matrix = asMatrix(shapes[t]!);
      return matrix === undefined ? undefined : { n: matrix[0], m: matrix[1], r: Math.min(this.options.rank, matrix[0], matrix[1]) };
    });
    // M = g + e per matrix
    const ms = grads.map((g, t) => {
      if (layout[t] === undefined || !this.options.errorFeedback) return g;
      const e = this.#residual.get(t);
      const m = Float32Array.from(g);
      if (e !== undefined) for (let i = 0; i < m.length; i++) m[i]! += e[i]!;
      return m;
    });
    // allReduce #1: every P = M Q, then the vectors as they are
    const firstParts = ms.map((m, t) => {
      const shape = layout[t];
      if (shape === undefined) return m;
      if (!this.options.warmStart || !this.#q.has(t)) this.#q.set(t, normalArray(this.#random, shape.m * shape.r));
      return matMul(m, this.#q.get(t)!, shape.n, shape.m, shape.r); // M Q: [n, r]
    });
    const first = await this.#meanOf(firstParts, comm);
    // allReduce #2: Q = M^T P for the orthonormalized mean P
    const secondParts: Float32Array[] = [];
    layout.forEach((shape, t) => {
      if (shape === undefined) return;
      orthonormalizeColumns(first[t]!, shape.n, shape.r);
      secondParts.push(matMulTransposedA(ms[t]!, first[t]!, shape.n, shape.m, shape.r)); // M^T P: [m, r]
    });
    const second = await this.#meanOf(secondParts, comm);
    let s = 0;
    return layout.map((shape, t) => {
      if (shape === undefined) return first[t]!;
      const p = first[t]!;
      const q = second[s++]!;
      this.#q.set(t, Float32Array.from(q));
      const approx = outerProduct(p, q, shape.n, shape.m, shape.r); // P Q^T: [n, m]
      const matrix = ms[t]!;
      const residual = this.options.errorFeedback ? new Float32Array(approx.length) : undefined; // M - P Q^T
      if (residual) for (let i = 0; i < residual.length; i++) residual[i] = matrix[i]! - approx[i]!;
      if (residual) this.#residual.set(t, residual);
      return approx;
    });
  }

  async #meanOf(parts: Float32Array[], comm: Collectives): Promise<Float32Array[]> {
    const total = parts.reduce((sum, p) => sum + p.length, 0);
    const buffer = new Float32Array(total);
    let offset = 0;
    for (const p of parts) {
      buffer.set(p, offset);
      offset += p.length;
    }
    const mean = comm.size > 1 ? await comm.allReduce(buffer, { op: "mean" }) : buffer;
    offset = 0;
    return parts.map((p) => {
      const out = mean.slice(offset, offset + p.length);
      offset += p.length;
      return out;
    });
  }

  expectedPayloadBytes(shapes: readonly (readonly number[])[]): number {
    return 4 * shapes.reduce((sum, shape) => {
      const matrix = asMatrix(shape);
      if (matrix === undefined) return sum + shape.reduce((a, b) => a * b, 1);
      const [n, m] = matrix;
      return sum + (n + m) * Math.min(this.options.rank, n, m);
    }, 0);
  }
}
