/**
 * Adam with a fused update on TF.js's webgpu and wasm backends.
 *
 * `adam(tf, lr)` returns a tf.AdamOptimizer (same constructor arguments,
 * same state, getWeights/setWeights) whose applyGradients updates its
 * float32 variables in place instead of running tf.train.adam's 14 kernels
 * per variable: on webgpu two variables to a dispatch
 * (webgpu/adam-update.ts), on wasm one pass per variable over the heap
 * (wasm/adam-update.ts, bit for bit the stock update). On every other
 * backend, with DISTLAB_WEBGPU_FUSED_ADAM=0 (webgpu) or
 * DISTLAB_WASM_FUSED_ADAM=0 (wasm), or where the backend lacks the
 * internals the fused path needs, it is tf.train.adam's own update,
 * unchanged. test/unit/compute-adam.test.ts compares the two.
 */
import { applyAdamUpdates } from "./wasm/adam-update";
import { hasWasmInternals } from "./wasm/tensor-info";
import { hasAdamInternals, recordAdamUpdates, type AdamSlot } from "./webgpu/adam-update";

type Tf = typeof import("@tensorflow/tfjs");
type Variable = import("@tensorflow/tfjs").Variable;
type AdamOptimizer = import("@tensorflow/tfjs").AdamOptimizer;
type NamedGradients = Parameters<AdamOptimizer["applyGradients"]>[0];

/** tf.AdamOptimizer's private state, as its 4.x source names it. */
interface AdamState {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: Variable;
  accBeta2: Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: Variable } | undefined>;
}

/** True where the fused path applies: webgpu or wasm, the expected internals, not switched off. */
export function fusedAdamAvailable(tf: Pick<Tf, "getBackend" | "backend">, env: NodeJS.ProcessEnv = process.env): boolean {
  const name = tf.getBackend();
  if (name === "webgpu") return env.DISTLAB_WEBGPU_FUSED_ADAM !== "0" && hasAdamInternals(tf.backend());
  if (name === "wasm") return env.DISTLAB_WASM_FUSED_ADAM !== "0" && hasWasmInternals(tf.backend());
  return false;
}

const classes = new WeakMap<object, new (lr: number, beta1: number, beta2: number, epsilon?: number) => AdamOptimizer>();

function adamClass(tf: Tf) {
  const existing = classes.get(tf);
  if (existing) return existing;
  class DistlabAdam extends tf.AdamOptimizer {
    /** beta^t as tf.train.adam accumulates it on the device (one float32 product per step), for the iteration it was computed at. */
    #acc = { iteration: -1, beta1: 0, beta2: 0 };
    /** The device copies of beta^t (stock state) lag behind after fused steps. */
    #deviceAccStale = false;

    override applyGradients(gradients: NamedGradients): void {
      const state = this as unknown as AdamState;
      if (!fusedAdamAvailable(tf)) {
        if (this.#deviceAccStale) {
          tf.tidy(() => {
            state.accBeta1.assign(tf.scalar(this.#powers().beta1));
            state.accBeta2.assign(tf.scalar(this.#powers().beta2));
          });
          this.#deviceAccStale = false;
        }
        return super.applyGradients(gradients);
      }
      const names = Array.isArray(gradients) ? gradients.map((g) => g.name) : Object.keys(gradients);
      const slots: AdamSlot[] = [];
      const backend = tf.backend() as unknown as Parameters<typeof recordAdamUpdates>[0] & Parameters<typeof applyAdamUpdates>[0];
      tf.tidy(() => {
        names.forEach((name, i) => {
          const value = tf.engine().registeredVariables[name]!;
          // Created as tf.train.adam creates them, so getWeights/setWeights and the stock path see the same state.
          state.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
          state.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
          const gradient = Array.isArray(gradients) ? gradients[i]!.tensor : gradients[name];
          if (gradient == null) return;
          slots.push({ x: value, m: state.accumulatedFirstMoment[i]!.variable, v: state.accumulatedSecondMoment[i]!.variable, g: gradient });
        });
      });
      const fusable = slots.every((s) => [s.x, s.m, s.v, s.g].every((t) => t.dtype === "float32") && s.g.dataId !== s.x.dataId);
      if (!fusable) return super.applyGradients(gradients);
      // Written in place: each of x, m, v must own its buffer (a variable shares it with the tensor it was made from).
      for (const variable of slots.flatMap((s) => [s.x, s.m, s.v]) as Variable[]) {
        if (backend.refCount(variable.dataId) > 1) tf.tidy(() => variable.assign(tf.mul(variable, 1)));
      }
      const { beta1: acc1, beta2: acc2 } = this.#powers();
      const hyper = {
        lr: state.learningRate, beta1: state.beta1, beta2: state.beta2, eps: state.epsilon,
        c1: Math.fround(1 - acc1), c2: Math.fround(1 - acc2),
      };
      if (tf.getBackend() === "wasm") applyAdamUpdates(backend, slots as unknown as Parameters<typeof applyAdamUpdates>[1], hyper);
      else recordAdamUpdates(backend, slots, hyper, tf.env().getNumber("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE"));
      this.#deviceAccStale = true;
      this.incrementIterations();
    }

    /** beta1^t and beta2^t for the coming step t = iterations + 1, as float32 products like the stock update's. */
    #powers(): { beta1: number; beta2: number } {
      const state = this as unknown as AdamState;
      const t = this.iterations;
      if (this.#acc.iteration !== t) {
        const b1 = Math.fround(state.beta1), b2 = Math.fround(state.beta2);
        this.#acc = this.#acc.iteration >= 0 && this.#acc.iteration === t - 1
          ? { iteration: t, beta1: Math.fround(this.#acc.beta1 * b1), beta2: Math.fround(this.#acc.beta2 * b2) }
          : { iteration: t, beta1: Math.fround(Math.pow(b1, t + 1)), beta2: Math.fround(Math.pow(b2, t + 1)) };
      }
      return this.#acc;
    }
  }
  classes.set(tf, DistlabAdam);
  return DistlabAdam;
}

/**
 * tf.train.adam(learningRate, beta1, beta2, epsilon) with the fused webgpu
 * update. `tf` is the TF.js module the caller uses (the GPU benchmark
 * bundles @tensorflow/tfjs-core alone).
 */
export function adam(tf: Tf, learningRate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon?: number): AdamOptimizer {
  const Adam = adamClass(tf);
  return new Adam(learningRate, beta1, beta2, epsilon);
}
