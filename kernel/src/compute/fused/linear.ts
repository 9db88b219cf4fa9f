/**
 * x w + bias for x [rows, in], w [in, out], bias [out], optionally through relu.
 *
 * On webgpu, tf.fused.matMul adds the bias in the product's kernel: one
 * dispatch instead of two forward; for large x the gradients are products
 * of untransposed operands, the form TF.js's webgpu backend runs fast
 * (./mat-mul.ts). On wasm with the machine's BLAS (../cpu-blas.ts) one
 * DistlabLinear kernel (../wasm/linear.ts): the product, then one pass that
 * adds the bias and applies relu in place; its gradient computes only the
 * inputs' gradients that are needed (tf.fused.matMul's computes all: a
 * first layer's x-gradient wasted a product as large as the layer's), and
 * relu's gradient is one masking pass. On wasm's own SIMD kernel, matMul
 * then add: the fused form was the slower one for the tiny GPT (figures:
 * docs/compute.md, "Figures behind the code").
 */
import { cpuBlas } from "../cpu-blas";
import { LINEAR, RELU_GRAD } from "../wasm/linear";
import { hasFusedKernel, runFused } from "./kernels";
import { untransposedLinear, wantsUntransposed } from "./mat-mul";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Tensor2D = import("@tensorflow/tfjs").Tensor2D;

export type LinearActivation = "linear" | "relu";

/** act(x w + bias), act = identity ("linear", the default) or relu. */
export function linear(tf: Tf, x: Tensor, w: Tensor, bias: Tensor, activation: LinearActivation = "linear"): Tensor {
  if (activation !== "linear" && activation !== "relu") throw new RangeError(`linear: activation must be "linear" or "relu", got ${JSON.stringify(activation)}`);
  const act = (y: Tensor) => (activation === "relu" ? tf.relu(y) : y);
  if (wantsUntransposed(tf, x)) return act(untransposedLinear(tf, x, w, bias));
  if (tf.getBackend() === "webgpu") return tf.fused.matMul({ a: x as Tensor2D, b: w as Tensor2D, bias, activation });
  if (tf.getBackend() === "wasm" && cpuBlas() && x.rank === 2 && w.rank === 2 && bias.rank === 1 && hasFusedKernel(tf, LINEAR, [x, w, bias])) {
    if (x.shape[1] !== w.shape[0] || bias.shape[0] !== w.shape[1]) {
      throw new RangeError(`linear: x [${x.shape}] w [${w.shape}] bias [${bias.shape}] do not fit (x [rows, in], w [in, out], bias [out])`);
    }
    registerLinearGradient(tf);
    return runFused(tf, LINEAR, { x, w, bias }, { relu: activation === "relu" ? 1 : 0 });
  }
  return act(tf.add(tf.matMul(x, w), bias));
}

/**
 * DistlabLinear's gradient, one function per input: TF.js calls only those on a path to what is
 * differentiated (a customGrad's gradient computes all of them). With relu, dy is first masked by
 * the saved output (DistlabReluGrad), once for all three, in the pass that sums the bias gradient.
 * Registered once per TF.js module.
 */
function registerLinearGradient(tf: Tf): void {
  if (tf.getGradient(LINEAR) !== undefined) return;
  tf.registerGradient({
    kernelName: LINEAR,
    inputsToSave: ["x", "w"],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, w, y] = saved as [Tensor, Tensor, Tensor];
      // dz [rows, out]: the gradient at the product (before relu); with relu its column sums (the bias gradient) come with it
      const [dz, dbias] = (attrs as { relu?: number }).relu ? runFused<Tensor[]>(tf, RELU_GRAD, { dy: dy as Tensor, y }) as [Tensor, Tensor] : [dy as Tensor, undefined];
      return {
        x: () => tf.matMul(dz, w, false, true), // [rows, out] . [in, out]^T
        w: () => tf.matMul(x, dz, true, false), // [rows, in]^T . [rows, out]
        bias: () => dbias ?? tf.sum(dz, 0),
      };
    },
  });
}
