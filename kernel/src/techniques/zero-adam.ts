/**
 * Adam (Kingma & Ba 2015) on flat float32 vectors, with bias correction:
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2;
 *   p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * Hand-written rather than tf.train.adam because ZeRO keeps the moments as
 * shards of the flattened parameter vector (a rank's slice of each unit),
 * which no per-variable optimizer can hold; elementwise, so a shard's update
 * equals the same elements of the whole vector's update.
 */
export interface AdamHyperparameters {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

export class FlatAdam {
  /** first moment [length] */
  readonly m: Float32Array;
  /** second moment [length] */
  readonly v: Float32Array;

  constructor(
    length: number,
    readonly hyper: AdamHyperparameters,
  ) {
    this.m = new Float32Array(length);
    this.v = new Float32Array(length);
  }

  /** Updates `params` in place from `grads` (both [length]); `t` is the step number, from 1. */
  step(params: Float32Array, grads: Float32Array, t: number): void {
    const { lr, beta1, beta2, epsilon } = this.hyper;
    if (params.length !== this.m.length || grads.length !== this.m.length) {
      throw new RangeError(`FlatAdam.step: ${params.length} parameters and ${grads.length} gradients for moments of ${this.m.length}`);
    }
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    const m = this.m, v = this.v;
    for (let i = 0; i < m.length; i++) {
      const g = grads[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      params[i] = params[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + epsilon);
    }
  }

  /** Bytes the two moments hold: 8 per element. */
  get bytes(): number {
    return this.m.byteLength + this.v.byteLength;
  }
}
