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
    if (grads.length !== this.params.length) throw new RangeError(`Sgd.step: ${grads.length} gradients for ${this.params.length} parameters`);
    this.params.forEach((p, i) => {
      let direction = grads[i]!;
      if (this.momentum > 0) {
        const v = this.#velocity[i]!;
        for (let j = 0; j < v.length; j++) v[j] = this.momentum * v[j]! + direction[j]!;
        direction = v;
      }
      tf.tidy(() => p.assign(p.sub(tf.tensor(direction, p.shape).mul(lr))));
    });
  }
}
