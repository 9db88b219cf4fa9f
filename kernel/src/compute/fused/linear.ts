/**
 * x w + bias for x [rows, in], w [in, out], bias [out].
 *
 * On webgpu, tf.fused.matMul adds the bias in the product's kernel: one
 * dispatch instead of two forward; for large x the gradients are products
 * of untransposed operands, the form TF.js's webgpu backend runs fast
 * (./mat-mul.ts). On wasm with the machine's BLAS (../cpu-blas.ts) one
 * DistlabLinear kernel (../wasm/linear.ts) writes the bias into the result
 * and adds the product to it, saving the add's pass; its gradient computes
 * only the inputs' gradients that are needed (tf.fused.matMul's computes
 * all: a first layer's x-gradient wasted a product as large as the
 * layer's). On wasm's own SIMD kernel, matMul then add: the fused form was
 * the slower one for the tiny GPT (figures: docs/compute.md, "Figures
 * behind the code").
 */
import { cpuBlas } from "../cpu-blas";
import { LINEAR } from "../wasm/linear";
import { hasFusedKernel, runFused } from "./kernels";
import { untransposedLinear, wantsUntransposed } from "./mat-mul";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Tensor2D = import("@tensorflow/tfjs").Tensor2D;

export function linear(tf: Tf, x: Tensor, w: Tensor, bias: Tensor): Tensor {
  if (wantsUntransposed(tf, x)) return untransposedLinear(tf, x, w, bias);
  if (tf.getBackend() === "webgpu") return tf.fused.matMul({ a: x as Tensor2D, b: w as Tensor2D, bias });
  if (tf.getBackend() === "wasm" && cpuBlas() && x.rank === 2 && w.rank === 2 && bias.rank === 1 && hasFusedKernel(tf, LINEAR, [x, w, bias])) {
    if (x.shape[1] !== w.shape[0] || bias.shape[0] !== w.shape[1]) {
      throw new RangeError(`linear: x [${x.shape}] w [${w.shape}] bias [${bias.shape}] do not fit (x [rows, in], w [in, out], bias [out])`);
    }
    registerLinearGradient(tf);
    return runFused(tf, LINEAR, { x, w, bias });
  }
  return tf.add(tf.matMul(x, w), bias);
}

/**
 * DistlabLinear's gradient, one function per input: TF.js calls only those on a path to what is
 * differentiated (a customGrad's gradient computes all of them). Registered once per TF.js module.
 */
function registerLinearGradient(tf: Tf): void {
  if (tf.getGradient(LINEAR) !== undefined) return;
  tf.registerGradient({
    kernelName: LINEAR,
    inputsToSave: ["x", "w"],
    gradFunc: (dy, saved) => {
      const [x, w] = saved as [Tensor, Tensor];
      const dyRows = dy as Tensor;
      return {
        x: () => tf.matMul(dyRows, w, false, true), // [rows, out] . [in, out]^T
        w: () => tf.matMul(x, dyRows, true, false), // [rows, in]^T . [rows, out]
        bias: () => tf.sum(dyRows, 0),
      };
    },
  });
}
