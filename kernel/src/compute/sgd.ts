/**
 * Plain SGD with a fused update on TF.js's wasm backend.
 *
 * `sgd(tf, lr)` returns a tf.SGDOptimizer (same constructor argument, same
 * state, setLearningRate) whose applyGradients updates float32 variables in
 * place, one pass each (wasm/sgd-update.ts), instead of tf.train.sgd's
 * multiply, add and assign. On every other backend, with
 * DISTLAB_WASM_FUSED_SGD=0, or where the backend lacks the internals the
 * fused path needs, it is tf.train.sgd's own update, unchanged.
 * test/unit/compute-sgd.test.ts compares the two.
 */
import { applySgdUpdates } from "./wasm/sgd-update";
import { hasWasmInternals } from "./wasm/tensor-info";

type Tf = typeof import("@tensorflow/tfjs");
type Variable = import("@tensorflow/tfjs").Variable;
type SGDOptimizer = import("@tensorflow/tfjs").SGDOptimizer;
type NamedGradients = Parameters<SGDOptimizer["applyGradients"]>[0];

/** True where the fused path applies: wasm with the expected internals, not switched off. */
export function fusedSgdAvailable(tf: Pick<Tf, "getBackend" | "backend">, env: NodeJS.ProcessEnv = process.env): boolean {
  return tf.getBackend() === "wasm" && env.DISTLAB_WASM_FUSED_SGD !== "0" && hasWasmInternals(tf.backend());
}

const classes = new WeakMap<object, new (learningRate: number) => SGDOptimizer>();

function sgdClass(tf: Tf) {
  const existing = classes.get(tf);
  if (existing) return existing;
  class DistlabSgd extends tf.SGDOptimizer {
    override applyGradients(gradients: NamedGradients): void {
      if (!fusedSgdAvailable(tf)) return super.applyGradients(gradients);
      const names = Array.isArray(gradients) ? gradients.map((g) => g.name) : Object.keys(gradients);
      const slots: Array<{ x: Variable; g: import("@tensorflow/tfjs").Tensor }> = [];
      names.forEach((name, i) => {
        const gradient = Array.isArray(gradients) ? gradients[i]!.tensor : gradients[name];
        if (gradient != null) slots.push({ x: tf.engine().registeredVariables[name]!, g: gradient });
      });
      const fusable = slots.every(({ x, g }) => x.dtype === "float32" && g.dtype === "float32" && g.size === x.size && g.dataId !== x.dataId);
      if (!fusable) return super.applyGradients(gradients);
      const backend = tf.backend() as unknown as Parameters<typeof applySgdUpdates>[0] & { refCount(dataId: object): number };
      // Written in place: a variable must own its buffer (it shares it with the tensor it was made from).
      for (const { x } of slots) if (backend.refCount(x.dataId) > 1) tf.tidy(() => x.assign(tf.mul(x, 1)));
      applySgdUpdates(backend, slots as never, this.learningRate);
      this.incrementIterations();
    }
  }
  classes.set(tf, DistlabSgd);
  return DistlabSgd;
}

/**
 * tf.train.sgd(learningRate) with the fused wasm update. `tf` is the TF.js module the caller uses.
 */
export function sgd(tf: Tf, learningRate: number): SGDOptimizer {
  const Sgd = sgdClass(tf);
  return new Sgd(learningRate);
}
