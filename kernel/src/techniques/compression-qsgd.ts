/**
 * QSGD-style stochastic quantization to int8 (Alistarh et al., NeurIPS 2017).
 *
 * Each parameter tensor v is sent as one float32 scale ||v|| and, per entry,
 * an int8 level q_i in [-s, s] (s = levels, at most 127):
 *   x_i = s |v_i| / ||v||,   l_i = floor(x_i),
 *   q_i = sign(v_i) (l_i + 1 with probability x_i - l_i, else l_i),
 *   decoded v_i ~ ||v|| q_i / s.
 * Rounding up with probability equal to the remainder makes the decoded value
 * unbiased: E[decoded] = v, so SGD still converges, with extra variance.
 * ||v|| is the max norm by default (lower variance at int8) or, as in the
 * paper, the L2 norm. Int8 levels of different ranks cannot be summed in
 * place, so ranks allGather their messages and each decodes and averages.
 * Bytes per rank per step: n + 4 T (n entries, T parameter tensors), a quarter
 * of float32's 4n.
 */
import { seededRandom, type Random } from "../data/random";
import type { Collectives, GradientArray, GradientSync } from "./types";
import { checkInteger, checkKnownKeys, checkOneOf } from "./validate";

export interface QsgdOptions {
  /** Quantization levels s per sign, 1..127 (127: full int8). Default 127. */
  levels: number;
  /** The scale ||v|| per tensor: "max" (max |v_i|) or "l2" (the paper's). Default "max". */
  norm: "max" | "l2";
  /** Seed of the rounding draws; each rank mixes in its rank. Default 0. */
  seed: number;
}

export const QSGD_DEFAULTS: QsgdOptions = { levels: 127, norm: "max", seed: 0 };

export function validateQsgdOptions(options: Partial<QsgdOptions>): QsgdOptions {
  checkKnownKeys("qsgd", options, QSGD_DEFAULTS);
  const o = { ...QSGD_DEFAULTS, ...options };
  checkInteger("qsgd.levels", o.levels, 1, 127);
  checkOneOf("qsgd.norm", o.norm, ["max", "l2"] as const);
  checkInteger("qsgd.seed", o.seed, 0);
  return o;
}

/**
 * Quantizes v: returns its scale and int8 levels. The rounding draws come
 * from an xorshift32 stream seeded once from `random` (inline: this loop runs
 * over every gradient entry of every step).
 */
export function qsgdEncode(v: Float32Array, levels: number, norm: "max" | "l2", random: Random): { scale: number; q: Int8Array } {
  let scale = 0;
  if (norm === "max") for (let i = 0; i < v.length; i++) scale = Math.max(scale, Math.abs(v[i]!));
  else scale = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  const q = new Int8Array(v.length);
  if (scale === 0) return { scale, q };
  const factor = levels / scale;
  let state = (Math.floor(random() * 4294967296) | 1) >>> 0; // xorshift32 needs a non-zero state
  for (let i = 0; i < v.length; i++) {
    const value = v[i]!;
    const x = (value < 0 ? -value : value) * factor;
    const low = x | 0; // floor, since x >= 0
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const u = (state >>> 0) / 4294967296; // uniform in [0, 1)
    const level = Math.min(levels, low + (u < x - low ? 1 : 0));
    q[i] = value < 0 ? -level : level;
  }
  return { scale, q };
}

export function qsgdDecode(scale: number, q: Int8Array, levels: number, out = new Float32Array(q.length), weight = 1): Float32Array {
  const step = (scale / levels) * weight;
  for (let i = 0; i < q.length; i++) out[i]! += q[i]! * step;
  return out;
}

export class QsgdCompression implements GradientSync {
  readonly name: string;
  readonly options: QsgdOptions;
  #random: Random | undefined;

  constructor(options: Partial<QsgdOptions> = {}) {
    this.options = validateQsgdOptions(options);
    this.name = `qsgd int8 (s=${this.options.levels})`;
  }

  async sync(grads: readonly GradientArray[], comm: Collectives, _shapes?: readonly (readonly number[])[]): Promise<GradientArray[]> {
    const { levels, norm } = this.options;
    this.#random ??= seededRandom(this.options.seed * 65_537 + comm.rank + 1);
    const tensors = grads.length;
    const n = grads.reduce((sum, g) => sum + g.length, 0);
    // message: T float32 scales, then n int8 levels; n + 4T bytes
    const message = new Uint8Array(4 * tensors + n);
    const scales = new Float32Array(message.buffer, 0, tensors);
    let offset = 4 * tensors;
    grads.forEach((g, t) => {
      const { scale, q } = qsgdEncode(g, levels, norm, this.#random!);
      scales[t] = scale;
      message.set(new Uint8Array(q.buffer), offset);
      offset += g.length;
    });
    const gathered = comm.size > 1 ? await comm.allGather(message) : message; // [size * (4T + n)]
    const out = grads.map((g) => new Float32Array(g.length));
    for (let r = 0; r < comm.size; r++) {
      const base = r * message.length;
      // copy: the scales of rank r may sit at an offset that is not a multiple of 4
      const rankScales = new Float32Array(gathered.slice(base, base + 4 * tensors).buffer);
      let at = base + 4 * tensors;
      grads.forEach((g, t) => {
        const q = new Int8Array(gathered.buffer, gathered.byteOffset + at, g.length);
        qsgdDecode(rankScales[t]!, q, levels, out[t], 1 / comm.size);
        at += g.length;
      });
    }
    return out;
  }

  expectedPayloadBytes(shapes: readonly (readonly number[])[]): number {
    return shapes.reduce((sum, shape) => sum + 4 + shape.reduce((a, b) => a * b, 1), 0);
  }
}
