/**
 * Large-batch data parallelism: the learning-rate rules of Goyal et al. 2017
 * ("Accurate, Large Minibatch SGD") and LAMB (You et al. 2019, lamb.ts).
 *
 * Linear scaling: when the global batch grows by k, multiply the learning
 * rate by k, so that k small steps and one k-times-larger step move the
 * weights about as far:  lr = baseLr * globalBatch / baseBatch.
 * Gradual warm-up: the first `warmupSteps` steps ramp linearly from baseLr
 * to the scaled rate, because early on the weights change fast and the
 * k-times rate overshoots:  lr(t) = baseLr + (lr - baseLr) * t / warmupSteps.
 */
import * as tf from "@tensorflow/tfjs";
import { concatGradients, localGradientsOf, splitGradients } from "./gradients";
import { Lamb, type LambOptions } from "./lamb";
import { Sgd } from "./sgd";
import { withSpan } from "./span";
import type { Model, BatchFn, PeerCollectives } from "./types";
import { checkInteger, checkKnownKeys, checkOneOf, checkRange } from "./validate";
import type { LossPoint } from "./loss-curve";
import { nowMs } from "./timing";

export interface LargeBatchOptions {
  /** steps to train */
  steps: number;
  /** samples per rank per step; the global batch is batchSize * ranks */
  batchSize: number;
  /** the learning rate that suits a global batch of baseBatch samples */
  baseLr: number;
  baseBatch: number;
  /** steps of linear warm-up from baseLr to the scaled rate; 0 = none */
  warmupSteps: number;
  /** "linear": lr = baseLr * global / baseBatch; "none": lr = baseLr at any batch */
  scaling: "linear" | "none";
  optimizer: "sgd" | "lamb";
  lamb: Partial<LambOptions>;
  /** loss of the current parameters; called on every rank every evalEvery steps; may be async (`await t.data()`: a GPU rank cannot read a tensor synchronously) */
  evaluate?: () => number | Promise<number>;
  evalEvery: number;
}

export const LARGE_BATCH_DEFAULTS: Omit<LargeBatchOptions, "steps" | "batchSize" | "baseLr" | "baseBatch"> = {
  warmupSteps: 0,
  scaling: "linear",
  optimizer: "sgd",
  lamb: {},
  evaluate: undefined,
  evalEvery: 1,
};

export interface LargeBatchReport {
  /** evaluate() by samples seen over all ranks */
  curve: LossPoint[];
  /** learning rate used at each step */
  lrs: number[];
  /** LAMB only: trust ratios of each variable at the last step */
  trustRatios: number[];
  ms: number;
}

type Given = Partial<LargeBatchOptions> & Pick<LargeBatchOptions, "steps" | "batchSize" | "baseLr" | "baseBatch">;

export function validateLargeBatchOptions(options: Given): LargeBatchOptions {
  checkKnownKeys("largeBatch", options, { ...LARGE_BATCH_DEFAULTS, steps: 0, batchSize: 0, baseLr: 0, baseBatch: 0 });
  const o = { ...LARGE_BATCH_DEFAULTS, ...options };
  checkInteger("largeBatch.steps", o.steps, 1);
  checkInteger("largeBatch.batchSize", o.batchSize, 1);
  checkRange("largeBatch.baseLr", o.baseLr, 0, Infinity, { low: true, high: true });
  checkInteger("largeBatch.baseBatch", o.baseBatch, 1);
  checkInteger("largeBatch.warmupSteps", o.warmupSteps, 0);
  checkOneOf("largeBatch.scaling", o.scaling, ["linear", "none"] as const);
  checkOneOf("largeBatch.optimizer", o.optimizer, ["sgd", "lamb"] as const);
  checkInteger("largeBatch.evalEvery", o.evalEvery, 1);
  return o;
}

/** The learning rate of step t (0-based) for a global batch, per the linear scaling rule and warm-up. */
export function scaledLr(step: number, globalBatch: number, o: Pick<LargeBatchOptions, "baseLr" | "baseBatch" | "warmupSteps" | "scaling">): number {
  const target = o.scaling === "linear" ? (o.baseLr * globalBatch) / o.baseBatch : o.baseLr;
  if (step >= o.warmupSteps) return target;
  return o.baseLr + ((target - o.baseLr) * step) / o.warmupSteps;
}

/** Synchronous data parallelism (mean gradient over the ranks) with the chosen rate rule and optimizer. */
export async function largeBatchTraining<B>(dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>, options: Given): Promise<LargeBatchReport> {
  const o = validateLargeBatchOptions(options);
  const globalBatch = o.batchSize * dist.size;
  const sgd = new Sgd(model.params, o.baseLr);
  const lamb = o.optimizer === "lamb" ? new Lamb(model.params, o.lamb) : undefined;
  const sizes = model.params.map((p) => p.size);
  const curve: LossPoint[] = [];
  const lrs: number[] = [];
  const start = nowMs();
  const measure = async (step: number): Promise<void> => {
    if (o.evaluate) curve.push({ step, samples: step * globalBatch, loss: await o.evaluate(), ms: nowMs() - start });
  };
  await measure(0);
  for (let step = 0; step < o.steps; step++) {
    const { grads } = await withSpan(dist, "forward+backward", () => localGradientsOf(model, () => batches(step, o.batchSize)));
    const mean = dist.size === 1 ? grads : splitGradients(await withSpan(dist, "allReduce", () => dist.allReduce(concatGradients(grads), { op: "mean" })), sizes);
    const lr = scaledLr(step, globalBatch, o);
    lrs.push(lr);
    await withSpan(dist, o.optimizer, async () => (lamb ? await lamb.step(mean, lr) : sgd.step(mean, lr)));
    if ((step + 1) % o.evalEvery === 0) await measure(step + 1);
  }
  return { curve, lrs, trustRatios: lamb?.lastTrustRatios ?? [], ms: nowMs() - start };
}
