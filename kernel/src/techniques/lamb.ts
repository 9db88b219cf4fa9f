/**
 * LAMB: layer-wise adaptive moments for large batches (You et al., ICLR 2020,
 * arXiv 2019). Adam's direction, rescaled per layer (per parameter tensor)
 * by the trust ratio ||w|| / ||r||, so every layer moves by lr times its own
 * norm whatever the gradient scale: large learning rates stay stable.
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
 *   r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * w
 *   w <- w - lr * trust(||w||, ||r||) * r,  trust = ||w|| / ||r|| (1 when either norm is 0)
 */
import * as tf from "@tensorflow/tfjs";
import { readTensors } from "./gradients";
import type { GradientArray } from "./types";
import { checkKnownKeys, checkRange } from "./validate";

export interface LambOptions {
  /** first-moment decay. Default 0.9 */
  beta1: number;
  /** second-moment decay. Default 0.999 */
  beta2: number;
  /** added to sqrt(v) to keep the division finite. Default 1e-6 */
  epsilon: number;
  /** decoupled weight decay, added to the direction before the trust ratio. Default 0 */
  weightDecay: number;
}

export const LAMB_DEFAULTS: LambOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0 };

export function validateLambOptions(options: Partial<LambOptions>): LambOptions {
  checkKnownKeys("lamb", options, LAMB_DEFAULTS);
  const o = { ...LAMB_DEFAULTS, ...options };
  checkRange("lamb.beta1", o.beta1, 0, 1, { high: true });
  checkRange("lamb.beta2", o.beta2, 0, 1, { high: true });
  checkRange("lamb.epsilon", o.epsilon, 0, Infinity, { low: true, high: true });
  checkRange("lamb.weightDecay", o.weightDecay, 0, Infinity, { high: true });
  return o;
}

/** ||w|| / ||r||, or 1 when either is 0 (a zero-initialised bias, a zero update). */
export function lambTrustRatio(weightNorm: number, updateNorm: number): number {
  return weightNorm > 0 && updateNorm > 0 ? weightNorm / updateNorm : 1;
}

/**
 * One LAMB step on one layer, in place on w, m, v (all [size] float32).
 * t is the 1-based step count (bias correction). Returns the trust ratio used.
 */
export function lambLayerStep(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, t: number, lr: number, o: LambOptions): number {
  const r = new Float32Array(w.length);
  const c1 = 1 - o.beta1 ** t;
  const c2 = 1 - o.beta2 ** t;
  let wNorm = 0;
  let rNorm = 0;
  for (let i = 0; i < w.length; i++) {
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
    r[i] = m[i]! / c1 / (Math.sqrt(v[i]! / c2) + o.epsilon) + o.weightDecay * w[i]!;
    wNorm += w[i]! * w[i]!;
    rNorm += r[i]! * r[i]!;
  }
  const trust = lambTrustRatio(Math.sqrt(wNorm), Math.sqrt(rNorm));
  for (let i = 0; i < w.length; i++) w[i]! -= lr * trust * r[i]!;
  return trust;
}

/** LAMB over a model's variables; each variable is one layer for the trust ratio. */
export class Lamb {
  readonly options: LambOptions;
  readonly #m: Float32Array[];
  readonly #v: Float32Array[];
  #t = 0;
  /** trust ratio of each variable at the last step */
  lastTrustRatios: number[] = [];

  constructor(readonly params: readonly tf.Variable[], options: Partial<LambOptions> = {}) {
    this.options = validateLambOptions(options);
    this.#m = params.map((p) => new Float32Array(p.size));
    this.#v = params.map((p) => new Float32Array(p.size));
  }

  /** Async: the weights are read back without blocking (a GPU rank cannot read a tensor synchronously). */
  async step(grads: readonly GradientArray[], lr: number): Promise<number[]> {
    if (grads.length !== this.params.length) throw new RangeError(`Lamb.step: ${grads.length} gradients for ${this.params.length} parameters`);
    this.#t += 1;
    const weights = await readTensors(this.params);
    this.lastTrustRatios = this.params.map((p, i) => {
      const w = weights[i]!;
      const trust = lambLayerStep(w, grads[i]!, this.#m[i]!, this.#v[i]!, this.#t, lr, this.options);
      tf.tidy(() => p.assign(tf.tensor(w, p.shape, "float32")));
      return trust;
    });
    return this.lastTrustRatios;
  }
}
