/**
 * Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"):
 * during training, every `frequency` steps from `startStep`, each prunable
 * weight tensor is cut to the schedule's sparsity by zeroing its smallest
 * magnitudes, layer by layer. The sparsity follows the cubic schedule
 *   s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3,   t in {t0, t0 + dt, ..., t0 + n dt}
 * (s_i initial, s_f target, n pruning updates dt steps apart): fast at first,
 * while many weights are redundant, slower as fewer remain. A pruned weight
 * stays zero: its gradient is masked, so SGD never moves it again.
 *
 * `PrunedGradientSync` is data parallelism's sync for a pruned model: every
 * rank holds the same weights, so the same masks, and the ranks exchange only
 * the gradients of the weights still alive (one allReduce of the packed
 * survivors), so the bytes on the wire fall with the sparsity.
 *
 * Prunable by default: every parameter of two or more dimensions (the weight
 * matrices and embeddings), not the biases and layer-norm gains. `allocation`
 * spreads s_f over them (pruning-allocation.ts): the same s_f each, or
 * Erdos-Renyi shares; each tensor follows the cubic schedule to its own s_f,l
 * (with s_i scaled by s_f,l / s_f, so s_t,l = s_t s_f,l / s_f).
 */
import * as tf from "@tensorflow/tfjs";
import { readTensors } from "./gradients";
import type { Collectives, GradientArray, GradientSync } from "./types";
import { PRUNING_ALLOCATIONS, layerSparsities, type PruningAllocation } from "./pruning-allocation";
import { checkInteger, checkKnownKeys, checkRange } from "./validate";

export interface PruningOptions {
  /** Final sparsity s_f: the fraction of each prunable tensor's entries set to zero, in [0, 1). */
  targetSparsity: number;
  /** Sparsity s_i of the first pruning update, in [0, targetSparsity]. Default 0. */
  initialSparsity: number;
  /** Step t0 of the first pruning update (training before it is dense). Default 0. */
  startStep: number;
  /** Number n of pruning updates after the first; the last is at t0 + n dt. Default 10. */
  pruningSteps: number;
  /** Steps dt between pruning updates. Default 10. */
  frequency: number;
  /** How s_f is spread over the prunable tensors: "uniform" (default) or "erdos-renyi" (pruning-allocation.ts). */
  allocation: PruningAllocation;
}

export const PRUNING_DEFAULTS: Omit<PruningOptions, "targetSparsity"> & { targetSparsity?: number } = { initialSparsity: 0, startStep: 0, pruningSteps: 10, frequency: 10, allocation: "uniform" };

export function validatePruningOptions(options: Partial<PruningOptions>): PruningOptions {
  checkKnownKeys("pruning", options, { ...PRUNING_DEFAULTS, targetSparsity: undefined });
  const o = { ...PRUNING_DEFAULTS, ...options };
  if (o.targetSparsity === undefined) throw new TypeError("pruning.targetSparsity is required: the final fraction of zero weights, in [0, 1)");
  checkRange("pruning.targetSparsity", o.targetSparsity, 0, 1, { high: true });
  checkRange("pruning.initialSparsity", o.initialSparsity, 0, o.targetSparsity);
  checkInteger("pruning.startStep", o.startStep, 0);
  checkInteger("pruning.pruningSteps", o.pruningSteps, 0);
  checkInteger("pruning.frequency", o.frequency, 1);
  if (!PRUNING_ALLOCATIONS.includes(o.allocation)) {
    throw new TypeError(`pruning.allocation must be one of ${PRUNING_ALLOCATIONS.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(o.allocation)}`);
  }
  return o as PruningOptions;
}

/** The cubic schedule's sparsity at step t: 0 before t0, s_f from t0 + n dt on. */
export function cubicSparsity(step: number, o: PruningOptions): number {
  if (step < o.startStep) return 0;
  const span = o.pruningSteps * o.frequency;
  const progress = span === 0 ? 1 : Math.min(1, (step - o.startStep) / span);
  return o.targetSparsity + (o.initialSparsity - o.targetSparsity) * (1 - progress) ** 3;
}

/** Magnitude pruning of a model's parameters on the cubic schedule, with the masks it keeps. */
export class MagnitudePruning {
  readonly options: PruningOptions;
  /** Indices (into params) of the tensors pruned. */
  readonly prunable: readonly number[];
  /** Per parameter: 1 where the weight is alive, 0 where pruned (all ones for tensors not pruned). */
  readonly masks: Uint8Array[];
  /** Per parameter: its final sparsity s_f,l under the allocation (0 for tensors not pruned). */
  readonly targets: number[];
  /** The schedule's sparsity s_t at the last update (tensor l's is s_t x targets[l] / s_f: sparsityOf). */
  scheduled = 0;

  constructor(
    readonly params: readonly tf.Variable[],
    options: Partial<PruningOptions>,
    isPrunable: (param: tf.Variable, index: number) => boolean = (p) => p.shape.length >= 2,
  ) {
    this.options = validatePruningOptions(options);
    this.prunable = params.flatMap((p, i) => (isPrunable(p, i) ? [i] : []));
    this.masks = params.map((p) => new Uint8Array(p.size).fill(1));
    const shares = layerSparsities(this.prunable.map((i) => params[i]!.shape), this.options.targetSparsity, this.options.allocation);
    this.targets = params.map(() => 0);
    this.prunable.forEach((index, k) => (this.targets[index] = shares[k]!));
  }

  /** Tensor `index`'s sparsity at the last update: its share of the schedule's s_t. */
  sparsityOf(index: number): number {
    return this.shareOf(index, this.scheduled);
  }

  /** Tensor `index`'s sparsity when the schedule is at `st`: st x s_f,l / s_f (uniform: st itself, not a rounding of it). */
  private shareOf(index: number, st: number): number {
    const sf = this.options.targetSparsity, share = this.targets[index]!;
    return share === sf ? st : (st * share) / sf;
  }

  /** True at the steps where the schedule updates the masks: t0, t0 + dt, ..., t0 + n dt. */
  isPruningStep(step: number): boolean {
    const o = this.options;
    return step >= o.startStep && step <= o.startStep + o.pruningSteps * o.frequency && (step - o.startStep) % o.frequency === 0;
  }

  /**
   * At a pruning step, zeroes the smallest-magnitude entries of each prunable tensor until round(s_t,l x size)
   * are zero (already pruned ones, being zero, stay among them). Returns s_t, or undefined off-schedule.
   */
  async update(step: number): Promise<number | undefined> {
    if (!this.isPruningStep(step)) return undefined;
    const sparsity = cubicSparsity(step, this.options);
    const values = await readTensors(this.prunable.map((i) => this.params[i]!));
    this.prunable.forEach((index, k) => {
      const w = values[k]!;
      const mask = this.masks[index]!;
      const cut = Math.round(this.shareOf(index, sparsity) * w.length);
      // indices by |w|, pruned (masked) entries first: a pruned weight never comes back
      const order = Array.from(w.keys()).sort((a, b) => mask[a]! - mask[b]! || Math.abs(w[a]!) - Math.abs(w[b]!) || a - b);
      for (let j = 0; j < cut; j++) {
        mask[order[j]!] = 0;
        w[order[j]!] = 0;
      }
      const param = this.params[index]!;
      tf.tidy(() => param.assign(tf.tensor(w, param.shape)));
    });
    this.scheduled = sparsity;
    return sparsity;
  }

  /** Zeroes the gradients of pruned weights in place (so an optimizer step leaves them at zero). */
  maskGradients(grads: GradientArray[]): GradientArray[] {
    for (const index of this.prunable) {
      const g = grads[index]!, mask = this.masks[index]!;
      for (let j = 0; j < g.length; j++) if (mask[j] === 0) g[j] = 0;
    }
    return grads;
  }

  /**
   * Sets the pruned weights back to zero. Needed after an optimizer with state (Adam's moments move a
   * weight whose gradient is now masked); plain SGD on masked gradients leaves them at zero already.
   */
  applyMasks(): void {
    for (const index of this.prunable) {
      const param = this.params[index]!;
      tf.tidy(() => param.assign(tf.mul(param, tf.tensor(this.masks[index]!, param.shape, "float32"))));
    }
  }

  /** Weights alive per the masks, over all parameters. */
  aliveCount(): number {
    return this.masks.reduce((sum, mask) => sum + mask.reduce((s, m) => s + m, 0), 0);
  }
}

/** Measured from the weights themselves: [zero entries, entries] over `params` (all of them unless `only` lists indices). */
export async function countZeros(params: readonly tf.Variable[], only?: readonly number[]): Promise<{ zeros: number; total: number }> {
  const chosen = only ? only.map((i) => params[i]!) : params;
  const values = await readTensors(chosen);
  let zeros = 0, total = 0;
  for (const v of values) {
    total += v.length;
    for (const x of v) if (x === 0) zeros++;
  }
  return { zeros, total };
}

/**
 * Data parallelism's sync for a pruned model: packs the gradients of the weights alive (every entry of
 * tensors not pruned), averages them in one allReduce, and unpacks them with zeros where pruned.
 * Payload: 4 bytes x alive weights.
 */
export class PrunedGradientSync implements GradientSync {
  readonly name = "pruned-allreduce-mean";

  constructor(readonly pruning: MagnitudePruning) {}

  async sync(grads: readonly GradientArray[], comm: Collectives): Promise<GradientArray[]> {
    const masks = this.pruning.masks;
    const packed = new Float32Array(this.pruning.aliveCount());
    let at = 0;
    grads.forEach((g, i) => {
      const mask = masks[i]!;
      for (let j = 0; j < g.length; j++) if (mask[j] === 1) packed[at++] = g[j]!;
    });
    const mean = comm.size === 1 ? packed : await comm.allReduce(packed, { op: "mean" });
    at = 0;
    return grads.map((g, i) => {
      const mask = masks[i]!;
      const out = new Float32Array(g.length);
      for (let j = 0; j < g.length; j++) if (mask[j] === 1) out[j] = mean[at++]!;
      return out;
    });
  }

  expectedPayloadBytes(): number {
    return 4 * this.pruning.aliveCount();
  }
}
