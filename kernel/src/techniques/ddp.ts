/**
 * DistributedDataParallel as in PyTorch's c10d reducer (Li et al., VLDB 2020).
 *
 * Gradients are grouped into buckets in reverse parameter order (the order
 * backward produces them): the first bucket holds up to firstBucketMiB, the
 * others up to bucketCapMiB; a parameter is never split. Backward runs stage
 * by stage from the last layer; when every gradient of a bucket exists, that
 * bucket's allReduce(mean) starts and runs while earlier layers are still
 * being differentiated. With T_c the backward time and T_m the communication
 * time, a step then takes about max(T_c, T_m) + one bucket's transfer instead
 * of T_c + T_m back to back.
 *
 * Where the rank has a communication thread (`dist.commThread`: thread ranks
 * and local process ranks), each ready bucket is handed to it: it runs the
 * bucket's allReduce on a world of its own while this thread goes on
 * differentiating, and its spans land on the rank's `comm` stream at their
 * real times. Elsewhere (ranks on remote hosts), when the communicator offers
 * non-blocking point-to-point messages, buckets are reduced with a ring built on them
 * (async-allreduce.ts), which moves only when this thread's event loop turns
 * (between layers); a blocking collective is the last resort. Either way
 * buckets go one after another, in order, on every rank.
 */
import type { CommThread } from "../comm/comm-thread";
import { ringAllReduceMeanAsync, type PointToPoint } from "./async-allreduce";
import { addScaled, concatGradients } from "./gradients";
import { Sgd } from "./sgd";
import { withSpan, withStep } from "./span";
import { onAsyncDevice, stagedBackward } from "./staged-backward";
import type { Collectives, GradientArray, StagedModel, StepResult } from "./types";
import { checkBoolean, checkKnownKeys, checkRange } from "./validate";
import { epochMicrosToPerformanceMs } from "../trace/clock";

export interface DdpOptions {
  /** Capacity of every bucket after the first, MiB (PyTorch's bucket_cap_mb). Default 25. */
  bucketCapMiB: number;
  /** Capacity of the first bucket, MiB: the last layers' gradients, ready first, sent early. Default 1. */
  firstBucketMiB: number;
  /** true: each bucket's allReduce starts when it is ready, during backward; false: all after backward, back to back. Default true. */
  overlap: boolean;
  /** SGD learning rate. Default 0.05. */
  lr: number;
  /** SGD momentum in [0, 1). Default 0. */
  momentum: number;
}

export const DDP_DEFAULTS: DdpOptions = { bucketCapMiB: 25, firstBucketMiB: 1, overlap: true, lr: 0.05, momentum: 0 };

export function validateDdpOptions(options: Partial<DdpOptions>): DdpOptions {
  checkKnownKeys("ddp", options, DDP_DEFAULTS);
  const o = { ...DDP_DEFAULTS, ...options };
  checkRange("ddp.bucketCapMiB", o.bucketCapMiB, 0, Infinity, { low: true });
  checkRange("ddp.firstBucketMiB", o.firstBucketMiB, 0, Infinity, { low: true });
  checkBoolean("ddp.overlap", o.overlap);
  checkRange("ddp.lr", o.lr, 0, Infinity, { low: true });
  checkRange("ddp.momentum", o.momentum, 0, 1, { high: true });
  return o;
}

/**
 * Parameter indices per bucket, in the order the buckets become ready:
 * reverse parameter order, first bucket up to firstBytes, the rest up to capBytes.
 */
export function assignBuckets(paramBytes: readonly number[], firstBytes: number, capBytes: number): number[][] {
  const buckets: number[][] = [];
  let current: number[] = [];
  let filled = 0;
  for (let i = paramBytes.length - 1; i >= 0; i--) {
    const cap = buckets.length === 0 ? firstBytes : capBytes;
    if (current.length > 0 && filled + paramBytes[i]! > cap) {
      buckets.push(current);
      current = [];
      filled = 0;
    }
    current.push(i);
    filled += paramBytes[i]!;
  }
  if (current.length > 0) buckets.push(current);
  return buckets;
}

/** Where the time of the last step went, milliseconds. */
export interface DdpStepTiming {
  /** forward + staged backward, including the gradient copies */
  computeMs: number;
  /** from the end of backward until every bucket was reduced (what overlap could not hide) */
  exposedCommMs: number;
  /** from the first bucket's launch until the last bucket was reduced */
  commMs: number;
  totalMs: number;
}

export class DistributedDataParallel<B> {
  readonly options: DdpOptions;
  readonly buckets: number[][];
  readonly optimizer: Sgd;
  lastTiming: DdpStepTiming = { computeMs: 0, exposedCommMs: 0, commMs: 0, totalMs: 0 };
  /** index in model.params of each stage's parameters (a tied parameter, e.g. GPT-2's wte, sits in two stages) */
  readonly #paramIndex: number[][];
  /** per model.params index, how many stages hold it: its gradient is the sum of theirs */
  readonly #holders: number[];

  constructor(
    readonly model: StagedModel<B>,
    readonly comm: Collectives,
    options: Partial<DdpOptions> = {},
  ) {
    this.options = validateDdpOptions(options);
    const mib = 1024 * 1024;
    this.buckets = assignBuckets(model.params.map((p) => 4 * p.size), this.options.firstBucketMiB * mib, this.options.bucketCapMiB * mib);
    this.optimizer = new Sgd(model.params, this.options.lr, this.options.momentum);
    const indexOf = new Map(model.params.map((p, i) => [p, i]));
    this.#holders = model.params.map(() => 0);
    this.#paramIndex = model.stages.map((stage, s) =>
      stage.params.map((p, j) => {
        const index = indexOf.get(p);
        if (index === undefined) throw new RangeError(`ddp: parameter ${j} of stage ${s} is not in model.params`);
        this.#holders[index]! += 1;
        return index;
      }),
    );
    const unheld = this.#holders.findIndex((count) => count === 0);
    if (unheld >= 0) throw new RangeError(`ddp: model.params[${unheld}] is in no stage: backward would never produce its gradient`);
  }

  /** Bytes of each bucket (float32). */
  bucketBytes(): number[] {
    return this.buckets.map((bucket) => bucket.reduce((sum, i) => sum + 4 * this.model.params[i]!.size, 0));
  }

  /** Steps taken so far: the next step's number on the timeline (`ProfilerStep#n` in exports). */
  stepsTaken = 0;

  /** One training step: backward with bucketed gradient sync (overlapped unless told), then the optimizer. */
  step(batch: B, overlap = this.options.overlap): Promise<StepResult> {
    return withStep(this.comm, this.stepsTaken++, () => this.runStep(batch, overlap));
  }

  private async runStep(batch: B, overlap: boolean): Promise<StepResult> {
    const thread = this.comm.size > 1 ? commThreadOf(this.comm) : undefined;
    // Starting the comm thread (first step only) is not part of any step's time.
    if (thread) await thread.ready();
    const started = performance.now();
    const grads: GradientArray[] = new Array(this.model.params.length);
    const bucketOf = new Map<number, number>();
    this.buckets.forEach((bucket, b) => bucket.forEach((i) => bucketOf.set(i, b)));
    const missing = this.buckets.map((bucket) => bucket.length);
    // stages still to hand out each parameter's gradient (2 for a tied one: ready after the second)
    const pending = [...this.#holders];
    const flights: Promise<void>[] = [];
    let firstLaunch = -1;
    /** when the comm thread finished the last bucket, performance.now() milliseconds */
    let commThreadEnd = -1;
    const p2p = pointToPointOf(this.comm);
    let queue: Promise<unknown> = Promise.resolve();
    const launch = (b: number): Promise<void> => {
      if (firstLaunch < 0) firstLaunch = performance.now();
      const members = this.buckets[b]!;
      const buffer = concatGradients(members.map((i) => grads[i]!));
      const scatter = (mean: Float32Array): void => {
        let offset = 0;
        for (const i of members) {
          grads[i] = mean.subarray(offset, offset + grads[i]!.length);
          offset += grads[i]!.length;
        }
      };
      if (thread) {
        // The comm thread runs its jobs in the order given and records their spans itself.
        return thread.run(buffer, { op: "mean", name: `bucket ${b} allReduce` }).then((result) => {
          commThreadEnd = Math.max(commThreadEnd, epochMicrosToPerformanceMs(result.end));
          scatter(result.data);
        });
      }
      // One bucket after another, in bucket order on every rank, so the ring's messages pair up.
      const reduce = (): Promise<Float32Array> =>
        p2p ? ringAllReduceMeanAsync(buffer, p2p) : this.comm.allReduce(buffer, { op: "mean" });
      const done = queue.then(() => withSpan(this.comm, `bucket ${b} allReduce`, reduce, "comm"));
      queue = done;
      return done.then(scatter);
    };
    const loss = await withSpan(this.comm, "forward+backward", () =>
      stagedBackward(this.model, batch, (stage, stageGrads) => {
        stageGrads.forEach((g, j) => {
          const index = this.#paramIndex[stage]![j]!;
          // a tied parameter's gradient is the sum over the stages that use it (each array is a fresh read)
          grads[index] = grads[index] ? addScaled(grads[index] as Float32Array, g as Float32Array) : g;
          if (--pending[index]! > 0) return;
          const b = bucketOf.get(index)!;
          missing[b]! -= 1;
          if (overlap && missing[b] === 0 && this.comm.size > 1) flights.push(launch(b));
        });
      }, true, this.comm),
    );
    const backwardEnd = performance.now();
    // This thread waits for the communication left, idle: the comm thread's spans say what that
    // time was (bytes moving, or a peer still computing), and the timeline never counts it as
    // compute overlapping the buckets.
    await withSpan(
      this.comm,
      "wait for buckets",
      async () => {
        if (!overlap && this.comm.size > 1) {
          if (thread) for (let b = 0; b < this.buckets.length; b++) flights.push(launch(b));
          else for (let b = 0; b < this.buckets.length; b++) await launch(b);
        }
        await Promise.all(flights);
      },
      "idle",
    );
    // The comm thread's own clock says when the last bucket was done; this thread may notice later.
    const reduced = commThreadEnd >= 0 ? commThreadEnd : performance.now();
    if (onAsyncDevice()) {
      // A GPU rank's averaged gradients go back to the device first: that copy is its own span (data: moving bytes, host to device).
      const updates = withSpan(this.comm, "upload", () => this.optimizer.upload(grads), "data");
      withSpan(this.comm, "optimizer", () => this.optimizer.apply(updates));
    } else {
      withSpan(this.comm, "optimizer", () => this.optimizer.step(grads));
    }
    this.lastTiming = {
      computeMs: backwardEnd - started,
      exposedCommMs: Math.max(0, reduced - backwardEnd),
      commMs: firstLaunch < 0 ? 0 : reduced - firstLaunch,
      totalMs: performance.now() - started,
    };
    return { loss };
  }
}

/** `dist.commThread` where the rank has one (thread ranks, local process ranks). */
function commThreadOf(comm: Collectives): CommThread | undefined {
  const thread = (comm as { commThread?: CommThread }).commThread;
  return thread && typeof thread.run === "function" ? thread : undefined;
}

/** `dist.comm` when it has non-blocking isend/irecv. */
function pointToPointOf(comm: Collectives): PointToPoint | undefined {
  const inner = (comm as { comm?: Partial<PointToPoint> }).comm;
  return inner && typeof inner.isend === "function" && typeof inner.irecv === "function" ? (inner as PointToPoint) : undefined;
}
