/**
 * Layer norm over the last axis: (x - mean) / sqrt(var + eps) * gain + bias.
 *
 * On a backend with the fused kernels (webgpu, ../webgpu/layer-norm.ts:
 * three dispatches per step, one forward and two backward; wasm,
 * ../wasm/layer-norm.ts: one kernel each way) it is a tf.customGrad op
 * running them instead of about thirty kernels; elsewhere it is the same
 * formula in stock ops, differentiated by TF.js (cpu unchanged).
 * layerNormReference writes the kernels' math in stock ops, forward and
 * backward, so the tests can hold the analytic gradient against TF.js's.
 */
import { LAYER_NORM, LAYER_NORM_GRAD } from "../webgpu/layer-norm";
import { hasFusedKernel, runFused } from "./kernels";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

/** GPT-2's epsilon (and PyTorch's default). */
export const LAYER_NORM_EPSILON = 1e-5;

/** The formula in stock ops; TF.js differentiates it. x [..., C], gain and bias [C]. */
function stockLayerNorm(tf: Tf, x: Tensor, gain: Tensor, bias: Tensor, epsilon: number): Tensor {
  const { mean, variance } = tf.moments(x, -1, true); // [..., 1]
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon))), gain), bias);
}

/**
 * The fused kernels' math in stock ops: y, and the gradients [dx, dgain,
 * dbias] for dy, as the WGSL computes them (tests compare it with TF.js's
 * gradient of the formula).
 */
export const layerNormReference = {
  forward: (tf: Tf, x: Tensor, gain: Tensor, bias: Tensor, epsilon = LAYER_NORM_EPSILON): Tensor => stockLayerNorm(tf, x, gain, bias, epsilon),
  backward(tf: Tf, dy: Tensor, x: Tensor, gain: Tensor, epsilon = LAYER_NORM_EPSILON): [Tensor, Tensor, Tensor] {
    return tf.tidy(() => {
      const width = x.shape[x.shape.length - 1]!;
      const { mean, variance } = tf.moments(x, -1, true);
      const rstd = tf.rsqrt(tf.add(variance, epsilon)); // [..., 1]
      const xhat = tf.mul(tf.sub(x, mean), rstd); // like x
      const g = tf.mul(dy, gain);
      const dx = tf.mul(rstd, tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
      const rows = tf.reshape(dy, [-1, width]);
      return [dx, tf.sum(tf.mul(rows, tf.reshape(xhat, [-1, width])), 0), tf.sum(rows, 0)];
    });
  },
};

const fusedOps = new WeakMap<object, Map<number, (x: Tensor, gain: Tensor, bias: Tensor) => Tensor>>();

function fusedLayerNorm(tf: Tf, epsilon: number) {
  let byEpsilon = fusedOps.get(tf);
  if (!byEpsilon) fusedOps.set(tf, (byEpsilon = new Map()));
  let op = byEpsilon.get(epsilon);
  if (!op) {
    op = tf.customGrad((x, gain, bias, save) => {
      (save as (t: Tensor[]) => void)([x as Tensor, gain as Tensor]);
      return {
        value: runFused<Tensor>(tf, LAYER_NORM, { x: x as Tensor, gain: gain as Tensor, bias: bias as Tensor }, { epsilon }),
        gradFunc: (dy: Tensor, saved: Tensor[]) => runFused<Tensor[]>(tf, LAYER_NORM_GRAD, { dy, x: saved[0]!, gain: saved[1]! }, { epsilon }),
      };
    }) as unknown as (x: Tensor, gain: Tensor, bias: Tensor) => Tensor;
    byEpsilon.set(epsilon, op);
  }
  return op;
}

/** x [..., C], gain [C], bias [C] -> like x. */
export function layerNorm(tf: Tf, x: Tensor, gain: Tensor, bias: Tensor, epsilon = LAYER_NORM_EPSILON): Tensor {
  if (hasFusedKernel(tf, LAYER_NORM, [x, gain, bias])) return fusedLayerNorm(tf, epsilon)(x, gain, bias);
  return stockLayerNorm(tf, x, gain, bias, epsilon);
}
