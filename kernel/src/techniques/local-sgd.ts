/**
 * Local SGD / DiLoCo (Douillard et al. 2023).
 *
 * Every rank takes H inner SGD steps on its own data with no communication.
 * Then the ranks average the outer gradient Delta = theta_global - theta_local
 * (one allReduce of P floats per H steps instead of one per step, so H times
 * fewer bytes; `syncs` counts the allReduces, dist.stats() measures the bytes) and apply it with an outer Nesterov momentum step
 * (PyTorch's SGD with nesterov=True, as in the paper):
 *   v <- mu * v + Delta
 *   theta_global <- theta_global - lr_outer * (Delta + mu * v)
 * with lr_outer = 0.7, mu = 0.9 as published. With H = 1, lr_outer = 1,
 * mu = 0 the round is exactly synchronous data-parallel SGD on the mean
 * gradient, which the tutorial uses as its baseline.
 */
import { withSpan } from "./span";
import type { Model, BatchFn, PeerCollectives } from "./types";
import { checkInteger, checkKnownKeys, checkRange } from "./validate";
import { assignFlat, flatStepGradients, flattenTensors } from "./flat-vectors";
import type { LossPoint } from "./loss-curve";
import { nowMs } from "./timing";

export interface LocalSgdOptions {
  /** H: inner steps between synchronisations (>= 1) */
  innerSteps: number;
  /** total inner steps per rank; a multiple of innerSteps */
  steps: number;
  /** samples per rank per inner step */
  batchSize: number;
  /** inner SGD learning rate */
  innerLr: number;
  /** outer Nesterov learning rate (DiLoCo: 0.7) */
  outerLr: number;
  /** outer Nesterov momentum (DiLoCo: 0.9) */
  outerMomentum: number;
  /** loss of the global parameters; called on every rank after each outer step (make it cheap); may be async (`await t.data()`: a GPU rank cannot read a tensor synchronously) */
  evaluate?: () => number | Promise<number>;
}

/** DiLoCo's published outer optimizer: Nesterov, lr 0.7, momentum 0.9. */
export const LOCAL_SGD_DEFAULTS: Pick<LocalSgdOptions, "outerLr" | "outerMomentum" | "evaluate"> = {
  outerLr: 0.7,
  outerMomentum: 0.9,
  evaluate: undefined,
};

export interface LocalSgdReport {
  /** evaluate() of the global parameters after each outer step, by samples seen over all ranks */
  curve: LossPoint[];
  /** allReduce calls made (steps / H) */
  syncs: number;
  ms: number;
}

type Given = Partial<LocalSgdOptions> & Pick<LocalSgdOptions, "innerSteps" | "steps" | "batchSize" | "innerLr">;

export function validateLocalSgdOptions(options: Given): LocalSgdOptions {
  checkKnownKeys("localSgd", options, { ...LOCAL_SGD_DEFAULTS, innerSteps: 0, steps: 0, batchSize: 0, innerLr: 0 });
  const o = { ...LOCAL_SGD_DEFAULTS, ...options };
  checkInteger("localSgd.innerSteps", o.innerSteps, 1);
  checkInteger("localSgd.steps", o.steps, 1);
  if (o.steps % o.innerSteps !== 0) {
    throw new RangeError(`localSgd.steps must be a multiple of localSgd.innerSteps (H = ${o.innerSteps}), got ${o.steps}`);
  }
  checkInteger("localSgd.batchSize", o.batchSize, 1);
  checkRange("localSgd.innerLr", o.innerLr, 0, Infinity, { low: true, high: true });
  checkRange("localSgd.outerLr", o.outerLr, 0, Infinity, { low: true, high: true });
  checkRange("localSgd.outerMomentum", o.outerMomentum, 0, 1, { high: true });
  return o;
}

/**
 * One outer Nesterov step, in place on `global` and `velocity` (all [P] float32).
 * outerGradient is the ranks' mean of theta_global - theta_local.
 */
export function nesterovOuterStep(global: Float32Array, velocity: Float32Array, outerGradient: Float32Array, learningRate: number, momentum: number): void {
  if (global.length !== velocity.length || global.length !== outerGradient.length) {
    throw new RangeError(`nesterovOuterStep: lengths differ (global ${global.length}, velocity ${velocity.length}, outerGradient ${outerGradient.length})`);
  }
  for (let i = 0; i < global.length; i++) {
    const v = momentum * velocity[i]! + outerGradient[i]!;
    velocity[i] = v;
    global[i]! -= learningRate * (outerGradient[i]! + momentum * v);
  }
}

export async function localSgd<B>(dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>, options: Given): Promise<LocalSgdReport> {
  const o = validateLocalSgdOptions(options);
  // Every rank starts from rank 0's parameters (collectives return fresh arrays).
  const global = await dist.broadcast(await flattenTensors(model.params), 0);
  assignFlat(model.params, global);
  const local = new Float32Array(global.length);
  const velocity = new Float32Array(global.length);
  const curve: LossPoint[] = [];
  const start = nowMs();
  let syncs = 0;
  for (let step = 0; step < o.steps; step++) {
    const { grads } = await withSpan(dist, "inner step", () => flatStepGradients(model, batches, step, o.batchSize));
    await flattenTensors(model.params, local);
    for (let i = 0; i < local.length; i++) local[i]! -= o.innerLr * grads[i]!;
    if ((step + 1) % o.innerSteps !== 0) {
      assignFlat(model.params, local);
      continue;
    }
    // Outer gradient: how far this rank moved in H steps, averaged over ranks.
    const delta = new Float32Array(global.length);
    for (let i = 0; i < delta.length; i++) delta[i] = global[i]! - local[i]!;
    syncs += 1;
    const meanDelta = await withSpan(dist, "outer allReduce", () => dist.allReduce(delta, { op: "mean" }));
    nesterovOuterStep(global, velocity, meanDelta, o.outerLr, o.outerMomentum);
    assignFlat(model.params, global);
    if (o.evaluate) curve.push({ step: step + 1, samples: (step + 1) * o.batchSize * dist.size, loss: await o.evaluate(), ms: nowMs() - start });
  }
  return { curve, syncs, ms: nowMs() - start };
}

/** Synchronous data-parallel SGD on the mean gradient: localSgd with H = 1, outer lr 1, momentum 0. */
export function synchronousSgd<B>(
  dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>,
  options: Omit<Given, "innerSteps" | "outerLr" | "outerMomentum">,
): Promise<LocalSgdReport> {
  return localSgd(dist, model, batches, { ...options, innerSteps: 1, outerLr: 1, outerMomentum: 0 });
}
