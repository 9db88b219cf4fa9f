/**
 * The gradient of Mean without a tensor of ones from the CPU.
 *
 * TF.js's gradient of mean(x) over some axes is (dy * ones(x.shape)) / n:
 * the ones are filled in JavaScript and, on the webgpu backend, uploaded
 * every time (a layer norm takes two means: 18 such uploads of 98,304
 * floats per tiny-GPT step, a tenth of a host-bound step; figures:
 * docs/compute.md, "Figures behind the code"). Broadcasting dy / n to x's shape gives the same values (dy * 1
 * is exact) with no upload. Gradients are registered per op, not per
 * backend: installed with the webgpu overrides, it applies to every backend
 * of the process, with identical results.
 */
import type { GradConfig, NamedAttrMap, Tensor } from "@tensorflow/tfjs";

type TfOps = Pick<typeof import("@tensorflow/tfjs"), "reshape" | "div" | "broadcastTo" | "scalar">;

export function meanGradient(tf: TfOps): GradConfig {
  return {
    kernelName: "Mean",
    inputsToSave: ["x"],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs?: NamedAttrMap) => {
      const [x] = saved as [Tensor];
      const rank = x.shape.length;
      const axis = (attrs as { axis?: number | number[] | null }).axis;
      // null: every axis (tf.mean's default)
      const axes = axis == null ? x.shape.map((_, i) => i) : (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
      const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d)); // dy's shape with the reduced axes kept as 1
      const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
      return { x: () => tf.broadcastTo(tf.div(tf.reshape(dy as Tensor, expanded), tf.scalar(count)), x.shape) };
    },
  };
}
