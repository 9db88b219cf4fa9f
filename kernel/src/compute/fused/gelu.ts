/**
 * GELU, tanh form (GPT-2; PyTorch's approximate="tanh"):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 *
 * On a backend with the fused kernels (webgpu, ../webgpu/gelu.ts; wasm,
 * ../wasm/gelu.ts) one kernel forward and one backward instead of about
 * eleven; elsewhere the same formula in stock ops, differentiated by TF.js
 * (cpu unchanged). geluReference writes the gradient kernel's math in stock
 * ops for the tests.
 */
import { GELU, GELU_GRAD } from "../webgpu/gelu";
import { hasFusedKernel, runFused } from "./kernels";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

const K = Math.sqrt(2 / Math.PI);

function stockGelu(tf: Tf, x: Tensor): Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), K);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

export const geluReference = {
  forward: stockGelu,
  /** dy (0.5 (1 + t) + 0.5 x (1 - t^2) K (1 + 3 0.044715 x^2)), t = tanh(K (x + 0.044715 x^3)) */
  backward(tf: Tf, dy: Tensor, x: Tensor): Tensor {
    return tf.tidy(() => {
      const t = tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), K));
      const slope = tf.mul(tf.mul(tf.mul(tf.mul(x, 0.5), tf.sub(1, tf.square(t))), K), tf.add(1, tf.mul(tf.square(x), 3 * 0.044715)));
      return tf.mul(dy, tf.add(tf.mul(tf.add(t, 1), 0.5), slope));
    });
  },
};

const fusedOps = new WeakMap<object, (x: Tensor) => Tensor>();

function fusedGelu(tf: Tf) {
  let op = fusedOps.get(tf);
  if (!op) {
    op = tf.customGrad((x, save) => {
      // The wasm kernel also returns s = sigmoid(2u) [like x], which its gradient reads instead of recomputing it.
      const result = runFused<Tensor | Tensor[]>(tf, GELU, { x: x as Tensor });
      const [y, s] = Array.isArray(result) ? result : [result];
      (save as (t: Tensor[]) => void)(s ? [x as Tensor, s] : [x as Tensor]);
      return {
        value: y!,
        gradFunc: (dy: Tensor, saved: Tensor[]) => runFused<Tensor>(tf, GELU_GRAD, { dy, x: saved[0]!, ...(saved[1] ? { s: saved[1] } : {}) }),
      };
    }) as unknown as (x: Tensor) => Tensor;
    fusedOps.set(tf, op);
  }
  return op;
}

/** Elementwise; x any shape. */
export function gelu(tf: Tf, x: Tensor): Tensor {
  return hasFusedKernel(tf, GELU, [x]) ? fusedGelu(tf)(x) : stockGelu(tf, x);
}
