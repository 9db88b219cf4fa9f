/**
 * Data parallelism: every rank holds the whole model, computes gradients on
 * its own shard of the batch, and the ranks average the gradients before the
 * same SGD step. With equal shards of a global batch B (B/k rows per rank),
 *   g = (1/k) sum_r g_r = (1/k) sum_r (k/B) sum_{i in shard r} grad l_i = (1/B) sum_i grad l_i,
 * exactly the gradient of the whole batch on one rank, so k ranks follow one
 * rank's trajectory up to float32 rounding.
 */
import { localGradients, splitGradients } from "./gradients";
import { Sgd } from "./sgd";
import { withSpan, withStep } from "./span";
import type { Collectives, GradientArray, GradientSync, Model, StepResult } from "./types";
import { checkKnownKeys, checkRange } from "./validate";

export interface DataParallelOptions {
  /** SGD learning rate applied after the sync. Default 0.05. */
  lr: number;
  /** SGD heavy-ball momentum in [0, 1). Default 0. */
  momentum: number;
  /** How gradients are combined across ranks; default: one fused allReduce(mean) (AllReduceMean). */
  gradientSync?: GradientSync;
}

export const DATA_PARALLEL_DEFAULTS: DataParallelOptions = { lr: 0.05, momentum: 0 };

export function validateDataParallelOptions(options: Partial<DataParallelOptions>): DataParallelOptions {
  checkKnownKeys("dataParallel", options, { ...DATA_PARALLEL_DEFAULTS, gradientSync: undefined });
  const o = { ...DATA_PARALLEL_DEFAULTS, ...options };
  checkRange("dataParallel.lr", o.lr, 0, Infinity, { low: true });
  checkRange("dataParallel.momentum", o.momentum, 0, 1, { high: true });
  if (o.gradientSync !== undefined && typeof (o.gradientSync as Partial<GradientSync>).sync !== "function") {
    throw new TypeError("dataParallel.gradientSync must have a sync(grads, comm) method");
  }
  return o;
}

/**
 * The plain sync: all gradients in one buffer, one allReduce(mean). Sends 4 bytes per parameter.
 * The buffer comes from comm.alloc where the collectives have registered memory (thread ranks),
 * so the allReduce reads and writes it in place, and is kept for the next step.
 */
export class AllReduceMean implements GradientSync {
  readonly name = "allreduce-mean";
  #flat?: Float32Array;

  async sync(grads: readonly GradientArray[], comm: Collectives, _shapes?: readonly (readonly number[])[]): Promise<GradientArray[]> {
    if (comm.size === 1) return grads.slice();
    const flat = this.buffer(comm, grads.reduce((sum, g) => sum + g.length, 0));
    let offset = 0;
    for (const g of grads) {
      flat.set(g, offset);
      offset += g.length;
    }
    const mean = await comm.allReduce(flat, { op: "mean", out: flat });
    return splitGradients(mean, grads.map((g) => g.length));
  }

  /** The flat gradient buffer of `length` elements, reused across steps. */
  private buffer(comm: Collectives, length: number): Float32Array {
    if (this.#flat?.length === length) return this.#flat;
    if (this.#flat && comm.free) {
      try {
        comm.free(this.#flat);
      } catch {
        // a buffer of an earlier world (rebuilt after a cancel) is not this world's to take back
      }
    }
    this.#flat = comm.alloc ? comm.alloc(Float32Array, length) : new Float32Array(length);
    return this.#flat;
  }

  expectedPayloadBytes(shapes: readonly (readonly number[])[]): number {
    return 4 * shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
  }
}

export class DataParallel<B> {
  readonly options: DataParallelOptions;
  readonly gradientSync: GradientSync;
  readonly optimizer: Sgd;

  constructor(
    readonly model: Model<B>,
    readonly comm: Collectives,
    options: Partial<DataParallelOptions> = {},
  ) {
    this.options = validateDataParallelOptions(options);
    this.gradientSync = this.options.gradientSync ?? new AllReduceMean();
    this.optimizer = new Sgd(model.params, this.options.lr, this.options.momentum);
  }

  /** Forward and backward on this rank's batch; no communication. */
  localGradients(batch: B): Promise<{ loss: number; grads: GradientArray[] }> {
    return withSpan(this.comm, "forward+backward", () => localGradients(this.model, batch));
  }

  /** sync -> optimizer step, for gradients computed (or accumulated) by the caller. */
  async syncAndStep(grads: readonly GradientArray[]): Promise<GradientArray[]> {
    const synced = await withSpan(this.comm, `sync (${this.gradientSync.name})`, () =>
      this.gradientSync.sync(grads, this.comm, this.model.params.map((p) => p.shape)), "comm",
    );
    withSpan(this.comm, "optimizer", () => this.optimizer.step(synced));
    return synced;
  }

  /** Steps taken so far: the next step's number on the timeline (`ProfilerStep#n` in exports). */
  stepsTaken = 0;

  /** One training step on this rank's shard of the global batch. */
  step(batch: B): Promise<StepResult> {
    return withStep(this.comm, this.stepsTaken++, async () => {
      const { loss, grads } = await this.localGradients(batch);
      await this.syncAndStep(grads);
      return { loss };
    });
  }

  /** Expected payload bytes this rank hands to the collectives per step, by the sync's formula (see GradientSync). */
  expectedPayloadBytes(): number {
    return this.gradientSync.expectedPayloadBytes(this.model.params.map((p) => p.shape), this.comm.size);
  }
}
