/**
 * Pipeline parallelism: the model's stages (layers) split into consecutive
 * chunks, one rank per pipeline stage, a batch split into m micro-batches
 * that flow through the stages. Activations travel downstream and their
 * gradients upstream as point-to-point messages (the communicator's
 * non-blocking isend/irecv); each stage runs its ops in the order its
 * schedule gives (pipeline-schedules.ts: GPipe, 1F1B, interleaved 1F1B,
 * ZB-H1), and each compute pass is a span on the timeline with
 * `args.stage` and `args.microbatch`, so the timeline draws the staircase
 * and its summary measures the bubble.
 *
 *   const pipe = new PipelineParallel(model, dist, { schedule: "1f1b", microBatches: 8 });
 *   const { loss } = await pipe.step(batch);   // every rank passes the same batch
 *
 * Every rank builds the whole model from the same seed and keeps it (so
 * gradients can be checked against one rank's), but computes and updates
 * only the parameters of its own chunks: with v chunks a stage (interleaved),
 * global chunk c runs on rank c mod p.
 *
 * The loss of a batch is the mean of its micro-batches' mean losses, so the
 * gradients equal the whole batch's on one rank (micro-batches of equal size).
 */
import * as tf from "@tensorflow/tfjs";
import type { TensorBatch } from "../data/batches";
import { PipelineChunk, splitLayers } from "./pipeline-chunks";
import { Mailbox } from "./pipeline-mailbox";
import { buildSchedule, validatePipelineShape, PIPELINE_SCHEDULES, type PipelineOp, type PipelineSchedule, type PipelineScheduleName } from "./pipeline-schedules";
import { Sgd } from "./sgd";
import type { StagedModel } from "./types";
import { checkInteger, checkKnownKeys, checkOneOf, checkRange } from "./validate";

export interface PipelineOptions {
  /** "gpipe" | "1f1b" | "interleaved" | "zb-h1". Default "1f1b". */
  schedule: PipelineScheduleName;
  /** Micro-batches m a batch is split into (the batch must divide by m). Default 4. */
  microBatches: number;
  /** Model chunks v per stage; more than 1 only with "interleaved". Default 1. */
  chunks: number;
  /** SGD learning rate step() applies to this rank's parameters. Default 0.05. */
  lr: number;
  /**
   * Emulated device time, milliseconds per pass of one micro-batch through one stage (a chunk
   * takes 1/v of it): a sleep inside the pass's span after its real compute, as a GPU per stage
   * would run it while the CPU is shared by all ranks. Default 0 (real compute only).
   */
  deviceMs: { F: number; B: number; W: number };
}

export const PIPELINE_DEFAULTS: PipelineOptions = { schedule: "1f1b", microBatches: 4, chunks: 1, lr: 0.05, deviceMs: { F: 0, B: 0, W: 0 } };

export function validatePipelineOptions(options: Partial<PipelineOptions>): PipelineOptions {
  checkKnownKeys("pipeline", options, PIPELINE_DEFAULTS);
  const o = { ...PIPELINE_DEFAULTS, ...options, deviceMs: { ...PIPELINE_DEFAULTS.deviceMs, ...options.deviceMs } };
  checkOneOf("pipeline.schedule", o.schedule, PIPELINE_SCHEDULES);
  checkInteger("pipeline.microBatches", o.microBatches, 1);
  checkInteger("pipeline.chunks", o.chunks, 1);
  checkRange("pipeline.lr", o.lr, 0, Infinity);
  checkKnownKeys("pipeline.deviceMs", o.deviceMs, PIPELINE_DEFAULTS.deviceMs);
  for (const pass of ["F", "B", "W"] as const) checkRange(`pipeline.deviceMs.${pass}`, o.deviceMs[pass], 0, Infinity);
  return o;
}

/** Non-blocking point-to-point messages: `dist.comm` in a cell, a Communicator in tests. */
export interface PipelineComm {
  readonly rank: number;
  readonly size: number;
  isend(x: Float32Array, peer: number): Promise<void>;
  irecv<T extends Float32Array>(into: T, peer: number): Promise<T>;
}

export interface PipelineStepResult {
  /** the batch's loss (mean over micro-batches) on the last stage; NaN on the others */
  loss: number;
  /** most micro-batches stashed at once on this stage (all its chunks), counted from the live stash */
  peakStashed: number;
  /** the same per local chunk, in `localChunks` order */
  peakStashedPerChunk: number[];
  /** bytes of the stashed tensors at that peak's largest (all chunks of this stage) */
  peakStashedBytes: number;
}

type SpanFn = <T>(name: string, fn: () => T, options?: { cat?: string; args?: Record<string, unknown> }) => T;

const PASS_NAMES: Record<PipelineOp["kind"], string> = { F: "forward", B: "backward input", W: "backward weights", BW: "backward" };

export class PipelineParallel {
  readonly options: PipelineOptions;
  readonly stages: number;
  readonly stage: number;
  readonly schedule: PipelineSchedule;
  /** global chunk indices this rank runs, in order */
  readonly localChunks: number[];
  /** [start, end) into model.stages of every global chunk */
  readonly chunkLayers: { start: number; end: number }[];
  /** d loss / d param of the last step, by index into model.params; only this rank's parameters */
  readonly lastGradients = new Map<number, Float32Array>();
  readonly #chunks = new Map<number, PipelineChunk>();
  readonly #comm: PipelineComm;
  readonly #optimizer: Sgd;
  readonly #paramIndex: Map<tf.Variable, number>;
  /** output shape of every global chunk for one micro-batch, by the micro-batch's input shape */
  readonly #shapes = new Map<string, number[][]>();
  #steps = 0;

  constructor(
    readonly model: StagedModel<TensorBatch>,
    /** `dist` of a %%distributed cell (its `comm` sends, its `span` records) or a communicator */
    readonly dist: object,
    options: Partial<PipelineOptions> = {},
  ) {
    this.options = validatePipelineOptions(options);
    this.#comm = pointToPointOf(dist);
    this.stages = this.#comm.size;
    this.stage = this.#comm.rank;
    const { schedule, microBatches, chunks } = this.options;
    validatePipelineShape(schedule, this.stages, microBatches, chunks, model.stages.length);
    this.schedule = buildSchedule(schedule, this.stages, microBatches, chunks);
    this.chunkLayers = splitLayers(model.stages.length, this.stages * chunks);
    this.localChunks = Array.from({ length: chunks }, (_, j) => j * this.stages + this.stage);
    for (const c of this.localChunks) {
      const { start, end } = this.chunkLayers[c]!;
      const layers = model.stages.slice(start, end);
      if (c > 0 && !layers[0]!.differentiableInput) {
        throw new RangeError(`pipeline: chunk ${c} starts at layer ${layers[0]!.name}, whose input is not differentiable; only the first chunk may`);
      }
      this.#chunks.set(c, new PipelineChunk(layers, c > 0 || layers[0]!.differentiableInput));
    }
    this.#paramIndex = new Map(model.params.map((p, i) => [p, i]));
    this.#optimizer = new Sgd(this.params, this.options.lr);
  }

  /** This rank's parameters (its chunks', in chunk order). */
  get params(): tf.Variable[] {
    return this.localChunks.flatMap((c) => this.#chunks.get(c)!.params);
  }

  /** Which rank runs global chunk c. */
  stageOf(chunk: number): number {
    return chunk % this.stages;
  }

  /**
   * One training step on `batch` (the same batch on every rank: the first stage reads its
   * inputs, the last its targets): the schedule's passes over all micro-batches, then SGD on
   * this rank's parameters. Fails before anything runs if the batch does not split into m.
   */
  async step(batch: TensorBatch): Promise<PipelineStepResult> {
    const result = await this.gradients(batch);
    this.#optimizer.step(this.params.map((p) => this.lastGradients.get(this.#paramIndex.get(p)!)!));
    return result;
  }

  /** The schedule's passes for `batch`: fills lastGradients, updates nothing. */
  async gradients(batch: TensorBatch): Promise<PipelineStepResult> {
    const m = this.options.microBatches;
    const rows = batch.x.shape[0]!;
    if (rows % m !== 0 || batch.y.shape[0] !== rows) {
      throw new RangeError(`pipeline: a batch of ${rows} samples (targets ${batch.y.shape[0]}) does not split into pipeline.microBatches = ${m} equal micro-batches`);
    }
    const step = this.#steps++;
    const size = rows / m;
    const xs = Array.from({ length: m }, (_, i) => tf.slice(batch.x, i * size, size));
    const ys = Array.from({ length: m }, (_, i) => tf.slice(batch.y, i * size, size));
    const shapes = this.#boundaryShapes(xs[0]!);
    const lastChunk = this.stages * this.options.chunks - 1;
    const mailbox = new Mailbox(this.#comm, this.schedule, shapes, this.options.chunks);
    const sends: Promise<void>[] = [];
    const lossGrads = new Map<number, tf.Tensor>(); // d loss / d output of the last chunk, by micro-batch
    const grads = new Map<number, Float32Array>();
    let lossSum = 0;
    for (const chunk of this.#chunks.values()) chunk.resetPeak();
    let peakBytes = 0;
    // Tensors are read with `await data()` (a GPU rank has no synchronous read); the sends of one
    // pass are awaited in turn, so messages to a peer leave in schedule order.
    const send = async (x: tf.Tensor, chunk: number, name: string): Promise<void> => {
      const to = this.stageOf(chunk);
      if (to === this.stage) return mailbox.keep(name, x); // the next chunk is this rank's own (one stage, v chunks)
      const data = ((await x.data()) as Float32Array).slice();
      x.dispose();
      sends.push(this.#comm.isend(data, to));
    };
    const addGrads = async (chunk: PipelineChunk, tensors: tf.Tensor[]): Promise<void> => {
      const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
      chunk.params.forEach((p, i) => {
        const g = values[i]!;
        const index = this.#paramIndex.get(p)!;
        const sum = grads.get(index);
        if (sum) for (let k = 0; k < sum.length; k++) sum[k]! += g[k]!;
        else grads.set(index, Float32Array.from(g));
      });
      tf.dispose(tensors);
    };
    try {
      for (const op of this.schedule[this.stage]!) {
        const chunk = this.#chunks.get(op.chunk)!;
        const mb = op.microBatch;
        // Waiting for the message is the comm layer's span; the pass's span holds its compute only.
        const received =
          op.kind === "F" && op.chunk > 0 ? await mailbox.take(`A:${op.chunk}:${mb}`, this.stageOf(op.chunk - 1))
          : (op.kind === "B" || op.kind === "BW") && op.chunk < lastChunk ? await mailbox.take(`G:${op.chunk}:${mb}`, this.stageOf(op.chunk + 1))
          : undefined;
        // Messages leave when the pass ends (after its emulated device time, if any).
        const outgoing: [tf.Tensor, number, string][] = [];
        await this.#span(op, step, async () => {
          if (op.kind === "F") {
            const x = received ?? tf.clone(this.model.input({ x: xs[mb]!, y: ys[mb]! }));
            const out = chunk.forward(mb, x);
            if (op.chunk === lastChunk) {
              const { value, grads: [dOut] } = tf.valueAndGrads((o: tf.Tensor) => this.model.head(o, { x: xs[mb]!, y: ys[mb]! }))([out]);
              lossSum += (await value.data())[0]!;
              lossGrads.set(mb, tf.tidy(() => tf.div(dOut!, m)));
              tf.dispose([value, dOut!, out]);
            } else {
              outgoing.push([out, op.chunk + 1, `A:${op.chunk + 1}:${mb}`]);
            }
          } else if (op.kind === "W") {
            await addGrads(chunk, chunk.backwardWeights(mb));
          } else {
            const dy = received ?? takeFrom(lossGrads, mb);
            if (op.kind === "B") {
              // the chunk keeps dy for its W
              const dx = chunk.backwardInput(mb, dy);
              if (dx && op.chunk > 0) outgoing.push([dx, op.chunk - 1, `G:${op.chunk - 1}:${mb}`]);
              else dx?.dispose();
            } else {
              const { dx, grads: g } = chunk.backward(mb, dy);
              dy.dispose();
              if (dx && op.chunk > 0) outgoing.push([dx, op.chunk - 1, `G:${op.chunk - 1}:${mb}`]);
              else dx?.dispose();
              await addGrads(chunk, g);
            }
          }
          peakBytes = Math.max(peakBytes, [...this.#chunks.values()].reduce((b, c) => b + c.stashedBytes, 0));
          const device = this.options.deviceMs;
          occupyDevice((op.kind === "BW" ? device.B + device.W : device[op.kind]) / this.options.chunks);
        });
        for (const [tensor, chunk, name] of outgoing) await send(tensor, chunk, name);
      }
      await Promise.all(sends);
    } catch (error) {
      for (const chunk of this.#chunks.values()) chunk.clear();
      tf.dispose([...lossGrads.values()]);
      throw error;
    } finally {
      tf.dispose([...xs, ...ys]);
    }
    this.lastGradients.clear();
    for (const [i, g] of grads) this.lastGradients.set(i, g);
    const perChunk = this.localChunks.map((c) => this.#chunks.get(c)!.peakStashed);
    return {
      loss: this.#chunks.has(lastChunk) ? lossSum / m : Number.NaN,
      // The chunks of a stage peak at different times; the stage's peak is at most their sum.
      peakStashed: perChunk.reduce((a, b) => a + b, 0),
      peakStashedPerChunk: perChunk,
      peakStashedBytes: peakBytes,
    };
  }

  /** Runs one pass inside a compute span the timeline and its bubble figure read. */
  #span(op: PipelineOp, step: number, fn: () => Promise<void>): Promise<void> {
    const span = (this.dist as { span?: unknown }).span;
    if (typeof span !== "function") return fn();
    const { schedule, microBatches, chunks, deviceMs } = this.options;
    // deviceMs: this pass's emulated device time, so runs with and without it can be told apart
    const device = (op.kind === "BW" ? deviceMs.B + deviceMs.W : deviceMs[op.kind]) / chunks;
    const args = { stage: this.stage, microbatch: op.microBatch, chunk: op.chunk, pass: op.kind, schedule, microBatches, chunks, step, deviceMs: device };
    return (span as SpanFn).call(this.dist, `${PASS_NAMES[op.kind]} ${op.microBatch}`, fn, { cat: "compute", args }) as Promise<void>;
  }

  /**
   * Each global chunk's output shape for one micro-batch shaped like x: every rank runs the
   * whole model's forward once per input shape (not timed with the passes), so a receiver
   * knows what each message holds.
   */
  #boundaryShapes(x: tf.Tensor): number[][] {
    const key = x.shape.join("x");
    let shapes = this.#shapes.get(key);
    if (!shapes) {
      shapes = tf.tidy(() => {
        const out: number[][] = [];
        let h = this.model.input({ x, y: x });
        for (const { start, end } of this.chunkLayers) {
          for (const stage of this.model.stages.slice(start, end)) h = stage.forward(h, stage.params);
          out.push(h.shape.slice());
        }
        return out;
      });
      this.#shapes.set(key, shapes);
    }
    return shapes;
  }
}

const deviceClock = new Int32Array(new SharedArrayBuffer(4));

/**
 * Emulated device time: blocks this rank's thread for `ms`, as a synchronous kernel launch on
 * the stage's own accelerator would, using no CPU. Atomics.wait wakes on the OS's timer, not
 * after whatever else the rank's event loop has queued: a setTimeout's lateness on a loaded
 * machine would land in the very bubble being measured (docs/techniques.md, Notes).
 */
export function occupyDevice(ms: number): void {
  if (ms > 0) Atomics.wait(deviceClock, 0, 0, ms);
}

function takeFrom(map: Map<number, tf.Tensor>, key: number): tf.Tensor {
  const value = map.get(key);
  if (!value) throw new Error(`pipeline: no loss gradient for micro-batch ${key}`);
  map.delete(key);
  return value;
}

/** `dist.comm` (cell) or the communicator itself (tests), checked for isend/irecv. */
function pointToPointOf(dist: object): PipelineComm {
  const candidates = [(dist as { comm?: unknown }).comm, dist];
  for (const c of candidates) {
    const p = c as Partial<PipelineComm> | undefined;
    if (p && typeof p.isend === "function" && typeof p.irecv === "function" && typeof p.rank === "number" && typeof p.size === "number") return p as PipelineComm;
  }
  throw new TypeError("pipeline: dist must offer non-blocking isend/irecv (dist.comm of a %%distributed cell, or a Communicator)");
}
