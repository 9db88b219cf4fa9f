/**
 * The one shape every technique shares.
 *
 * A technique file exports:
 * - `XOptions`: an interface, every field documented where it is declared;
 * - `X_DEFAULTS`: the defaults, merged once (`{ ...X_DEFAULTS, ...options }`);
 * - `validateXOptions(options)`: synchronous, throws a RangeError or TypeError
 *   naming the option (`topK.ratio must be in (0, 1], got 0`) before any
 *   training starts;
 * - one class or function that does the work.
 *
 * Models are plain objects over tf.Variables, so any technique can read and
 * write their parameters without knowing the architecture.
 */
import type * as tf from "@tensorflow/tfjs";

/** Anything trainable: its parameters and a scalar loss of one batch. */
export interface Model<B> {
  /** Trainable parameters, in forward order (first layer first). */
  readonly params: tf.Variable[];
  /** Mean loss over the batch: a scalar. */
  loss(batch: B): tf.Scalar;
}

/**
 * One step of a model's forward pass. Models that expose their stages let
 * a technique run backward one stage at a time, last stage first: the
 * points at which DDP knows a gradient bucket is ready.
 */
export interface Stage {
  readonly name: string;
  /** This stage's parameters, in forward order. */
  readonly params: tf.Variable[];
  /** False when the input is not differentiable (token ids into an embedding). */
  readonly differentiableInput: boolean;
  /** The stage's output; `params` are the values of `this.params` (or stand-ins for them under tf.grads). */
  forward(input: tf.Tensor, params: tf.Tensor[]): tf.Tensor;
}

/**
 * A stage whose backward splits into its two halves without re-running forward: the input
 * gradient (a pipeline's B pass, on the critical path upstream) and the weight gradients
 * (W, which can wait). Pipeline schedules that split backward (ZB-H1) time them apart.
 */
export interface SplitBackwardStage extends Stage {
  /** d loss / d input [like input], from the stage's input and dy = d loss / d output [like output] */
  backwardInput(input: tf.Tensor, dy: tf.Tensor, params: tf.Tensor[]): tf.Tensor;
  /** d loss / d params, in `params` order, from the same input and dy */
  backwardWeights(input: tf.Tensor, dy: tf.Tensor, params: tf.Tensor[]): tf.Tensor[];
}

/** A model made of stages run in sequence; `loss(b) = head(stages(input(b)), b)`. */
export interface StagedModel<B> extends Model<B> {
  readonly stages: readonly Stage[];
  /** The first stage's input for a batch. */
  input(batch: B): tf.Tensor;
  /** The loss from the last stage's output (no parameters of its own). */
  head(output: tf.Tensor, batch: B): tf.Scalar;
}

export type ReduceOp = "sum" | "mean" | "max" | "min" | "product";
export type GradientArray = Float32Array;

/**
 * The collectives a technique needs: `dist` of a distributed cell satisfies
 * it, and so does `countBytes(dist)` (byte-counter.ts).
 */
export interface Collectives {
  readonly rank: number;
  readonly size: number;
  /** `out`: write the result there (may be x itself) instead of a fresh array. */
  allReduce<T extends Float32Array | Float64Array | Int32Array | Uint8Array>(x: T, options?: { op?: ReduceOp; out?: T }): Promise<T>;
  /** Every rank's x (equal lengths) concatenated in rank order. */
  allGather<T extends Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array>(x: T): Promise<T>;
  /** A buffer the collectives use in place (dist.alloc: registered memory of a thread world), where there is one. */
  alloc?(dtype: typeof Float32Array, length: number): Float32Array;
  free?(array: Float32Array): void;
}

/**
 * The "sync" stage: turns this rank's gradients (one flat array per
 * parameter, in `Model.params` order) into the gradients every rank applies.
 * Plain data parallelism averages them with one allReduce; a compressor
 * (compression-*.ts) encodes, exchanges and decodes them.
 */
export interface GradientSync {
  readonly name: string;
  /** `shapes[i]` is the shape of parameter i (PowerSGD sees gradients as matrices). */
  sync(grads: readonly GradientArray[], comm: Collectives, shapes: readonly (readonly number[])[]): Promise<GradientArray[]>;
  /**
   * Expected, not measured: the bytes of the payload this rank hands to the collectives per sync for
   * these parameter shapes (the paper's formula: 4P, 8k, P + 4T, 4(sum (n+m)r + vectors)). What the
   * transport moves also depends on the collective's algorithm and the number of ranks (a ring
   * allReduce sends 2(n-1)/n of it, an allGather n-1 times it); measure that with dist.stats().
   */
  expectedPayloadBytes(shapes: readonly (readonly number[])[], size: number): number;
}

/** What a training step reports. */
export interface StepResult {
  /** this rank's loss on its own batch, before the update */
  loss: number;
}

/** Collectives plus the point-to-point calls these techniques use; a distributed cell's `dist` satisfies it. */
export interface PeerCollectives extends Collectives {
  broadcast<T extends Float32Array | Float64Array>(x: T, root: number): Promise<T>;
  send(x: Float32Array | Float64Array, peer: number): Promise<void>;
  /** Receives into a buffer shaped like `like`; its length must match what the peer sent. */
  recv<T extends Float32Array | Float64Array>(like: T, peer: number): Promise<T>;
  barrier(): Promise<void>;
}

/** This rank's batch number `step`, of `batchSize` samples (seed it by rank for different data per rank). */
export type BatchFn<B> = (step: number, batchSize: number) => B;
