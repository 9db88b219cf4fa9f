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
    this.apply(this.upload(grads), lr);
  }

  /**
   * The step's directions (the gradients, or the momentum buffers they update) as tensors of the
   * parameters' shapes: on a GPU backend, the copy to the device. `apply` takes them (and disposes them).
   */
  upload(grads: readonly GradientArray[]): tf.Tensor[] {
    if (grads.length !== this.params.length) throw new RangeError(`Sgd.step: ${grads.length} gradients for ${this.params.length} parameters`);
    return this.params.map((p, i) => {
      let direction = grads[i]!;
      if (this.momentum > 0) {
        const v = this.#velocity[i]!;
        for (let j = 0; j < v.length; j++) v[j] = this.momentum * v[j]! + direction[j]!;
        direction = v;
      }
      return tf.tensor(direction, p.shape);
    });
  }

  /** p <- p - lr * direction for every parameter; disposes `directions` (from `upload`). */
  apply(directions: readonly tf.Tensor[], lr = this.lr): void {
    try {
      this.params.forEach((p, i) => tf.tidy(() => p.assign(p.sub(directions[i]!.mul(lr)))));
    } finally {
      tf.dispose(directions as tf.Tensor[]);
    }
  }
}
