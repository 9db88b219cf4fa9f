/**
 * The optimizer step, last in every technique's order: plain SGD with
 * optional heavy-ball momentum, on gradients held as Float32Arrays.
 *   v <- momentum * v + g;   p <- p - lr * v
 */
import * as tf from "@tensorflow/tfjs";
import type { GradientArray } from "./types";

export class Sgd {
  readonly #velocity: Float32Array[];

  constructor(
    readonly params: readonly tf.Variable[],
    readonly lr: number,
    readonly momentum = 0,
  ) {
    this.#velocity = params.map((p) => new Float32Array(momentum > 0 ? p.size : 0));
  }

  step(grads: readonly GradientArray[], lr = this.lr): void {
    this.apply(this.upload(grads, lr));
  }

  /**
   * The step's updates, lr * direction (the gradients, or the momentum buffers they update), as
   * tensors of the parameters' shapes. On a GPU backend this is the copy to the device: TF.js
   * uploads a tensor's values when a kernel first reads them, and the scaling by lr is that kernel,
   * so the copy happens here and not in `apply`. `apply` takes them (and disposes them).
   */
  upload(grads: readonly GradientArray[], lr = this.lr): tf.Tensor[] {
    if (grads.length !== this.params.length) throw new RangeError(`Sgd.step: ${grads.length} gradients for ${this.params.length} parameters`);
    return this.params.map((p, i) => {
      let direction = grads[i]!;
      if (this.momentum > 0) {
        const v = this.#velocity[i]!;
        for (let j = 0; j < v.length; j++) v[j] = this.momentum * v[j]! + direction[j]!;
        direction = v;
      }
      return tf.tidy(() => tf.tensor(direction, p.shape).mul(lr));
    });
  }

  /** p <- p - update for every parameter; disposes `updates` (from `upload`). */
  apply(updates: readonly tf.Tensor[]): void {
    try {
      this.params.forEach((p, i) => tf.tidy(() => p.assign(p.sub(updates[i]!))));
    } finally {
      tf.dispose(updates as tf.Tensor[]);
    }
  }
}
