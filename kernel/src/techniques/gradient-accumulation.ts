/**
 * Gradient accumulation: m micro-batches of b rows each are differentiated
 * one after another on the same rank, their gradients summed locally and
 * divided by m, then synced once. Since every micro-batch loss is a mean,
 *   (1/m) sum_j (1/b) sum_{i in j} grad l_i = (1/(m b)) sum_i grad l_i,
 * the gradient of one batch of m*b rows: the same step, at the memory of b
 * rows and with one m-th of the communication per sample.
 */
import type { DataParallel } from "./data-parallel";
import { addScaled } from "./gradients";
import type { StepResult } from "./types";
import { checkInteger, checkKnownKeys } from "./validate";
import { withStep } from "./span";

export interface GradientAccumulationOptions {
  /** Micro-batches per optimizer step (m); every step must get exactly this many. Default 4. */
  microBatches: number;
}

export const GRADIENT_ACCUMULATION_DEFAULTS: GradientAccumulationOptions = { microBatches: 4 };

export function validateGradientAccumulationOptions(options: Partial<GradientAccumulationOptions>): GradientAccumulationOptions {
  checkKnownKeys("gradientAccumulation", options, GRADIENT_ACCUMULATION_DEFAULTS);
  const o = { ...GRADIENT_ACCUMULATION_DEFAULTS, ...options };
  checkInteger("gradientAccumulation.microBatches", o.microBatches, 1);
  return o;
}

export class GradientAccumulation<B> {
  readonly options: GradientAccumulationOptions;

  /** Accumulates in front of `dataParallel`'s sync and optimizer step. */
  constructor(
    readonly dataParallel: DataParallel<B>,
    options: Partial<GradientAccumulationOptions> = {},
  ) {
    this.options = validateGradientAccumulationOptions(options);
  }

  /** One optimizer step over `microBatches` (exactly options.microBatches of them, equal sizes); returns their mean loss. */
  async step(microBatches: readonly B[]): Promise<StepResult> {
    const m = this.options.microBatches;
    if (microBatches.length !== m) {
      throw new RangeError(`gradientAccumulation.step: got ${microBatches.length} micro-batches, gradientAccumulation.microBatches is ${m}`);
    }
    return withStep(this.dataParallel.comm, this.dataParallel.stepsTaken++, () => this.accumulateAndStep(microBatches));
  }

  private async accumulateAndStep(microBatches: readonly B[]): Promise<StepResult> {
    const m = this.options.microBatches;
    let sum: Float32Array[] | undefined;
    let loss = 0;
    for (const micro of microBatches) {
      const local = await this.dataParallel.localGradients(micro);
      loss += local.loss / m;
      if (sum === undefined) sum = local.grads;
      else sum.forEach((s, i) => addScaled(s, local.grads[i]!));
    }
    for (const s of sum!) for (let i = 0; i < s.length; i++) s[i]! /= m;
    await this.dataParallel.syncAndStep(sum!);
    return { loss };
  }
}
