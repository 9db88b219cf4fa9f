/**
 * Composition of data, tensor and pipeline parallelism on a device mesh
 * {dp, pp, tp} (Narayanan et al. 2021, Megatron-LM's PTD-P).
 *
 * Rank layout, fixed: the mesh has shape [dp, pp, tp] with names
 * ["dp", "pp", "tp"], row-major, so
 *
 *   rank = (d * pp + s) * tp + t          (d, s, t) = (dp, pp, tp) coordinates
 *
 * TP innermost (its ranks are adjacent: the most traffic on the nearest
 * links), then PP, DP outermost. One step, in this order:
 *
 *   1. DP   replica d takes rows [d B/dp, (d+1) B/dp) of the global batch B;
 *   2. TP / PP inside the replica:
 *      - tp > 1, pp = 1: TensorParallelGpt on the tp axis group (2 allReduces a
 *        layer each way);
 *      - tp = 1, pp > 1: PipelineParallel on the pp axis group with its schedule
 *        (activations and their gradients point to point);
 *      - tp > 1, pp > 1: the model's stages (embedding, blocks, head) split into
 *        pp consecutive ranges; each stage's blocks tensor-parallel in its tp
 *        group (TensorParallelGpt.forwardStage / backwardStage, a tape per
 *        micro-batch in flight), activations [s, b/m, C] sent down the pp
 *        group, their gradients up, in the schedule's order (1F1B, bubble
 *        (p-1)/(m+p-1); or GPipe). Every TP peer of a stage runs the same
 *        schedule, so the tp group's allReduces pair up in the same order;
 *   3. DP   every parameter's gradient (a TP shard, or a PP stage's layers)
 *      averaged over the dp axis group in one allReduce of the flat
 *      gradients (sum, divided by dp);
 *   4. SGD  on this rank's parameters.
 * Equal replica batches (and micro-batches) make the average of the mean-loss
 * gradients the whole batch's, so a step equals one rank's on the global
 * batch up to float32 rounding.
 *
 * Every collective runs in a group the mesh named after its axis ("dp[0,1]",
 * "tp[1,0]", "pp[0,1]": the axis, then this rank's coordinates on the other
 * axes), so a timeline comm span's `group` arg names its mesh dimension
 * (meshDimensionOf).
 */
import * as tf from "@tensorflow/tfjs";
import type { Communicator, DeviceMesh } from "../comm/types";
import type { TensorBatch } from "../data/batches";
import type { TinyGpt } from "../models/tiny-gpt";
import { splitLayers } from "./pipeline-chunks";
import { occupyDevice, PipelineParallel, type PipelineOptions } from "./pipeline-parallel";
import { buildSchedule, PIPELINE_SCHEDULES, validatePipelineShape, type PipelineScheduleName } from "./pipeline-schedules";
import { MESH_DIMENSIONS, meshDimensionOfGroup, type MeshDimension } from "../trace/mesh-dimension";
import { withSpan } from "./span";
import { checkTensorParallelShape, TensorParallelGpt } from "./tensor-parallel";
import { checkInteger, checkKnownKeys, checkOneOf, checkRange } from "./validate";

/** Degrees of the three mesh dimensions; their product is the world size. */
export interface MeshDegrees {
  dp: number;
  tp: number;
  pp: number;
}

export { MESH_DIMENSIONS, type MeshDimension };

export interface ComposeOptions {
  /** SGD learning rate. Default 0.05. */
  lr: number;
  /** Pipeline schedule when pp > 1; with tp > 1 too, "1f1b" or "gpipe" (the others split or interleave passes TensorParallelGpt runs whole). Default "1f1b". */
  schedule: PipelineScheduleName;
  /** Micro-batches per replica batch when pp > 1 (the replica batch must divide by it; the schedule's minimum applies). Default 4. */
  microBatches: number;
  /**
   * Emulated device time of a pipeline pass, milliseconds per micro-batch through one stage,
   * as PipelineOptions.deviceMs: a wait inside the pass's span using no CPU, so the bubble
   * shows on a CPU that all ranks share. Default 0 (real compute only).
   */
  deviceMs: { F: number; B: number; W: number };
}

export const COMPOSE_DEFAULTS: ComposeOptions = { lr: 0.05, schedule: "1f1b", microBatches: 4, deviceMs: { F: 0, B: 0, W: 0 } };

/** Schedules TP inside pipeline stages runs: each pass is a whole forward or backward of a micro-batch. */
const TENSOR_PIPELINE_SCHEDULES: readonly PipelineScheduleName[] = ["1f1b", "gpipe"];

export function validateComposeOptions(options: Partial<ComposeOptions>): ComposeOptions {
  checkKnownKeys("compose", options, COMPOSE_DEFAULTS);
  const o = { ...COMPOSE_DEFAULTS, ...options, deviceMs: { ...COMPOSE_DEFAULTS.deviceMs, ...options.deviceMs } };
  checkRange("compose.lr", o.lr, 0, Infinity);
  checkOneOf("compose.schedule", o.schedule, PIPELINE_SCHEDULES);
  checkInteger("compose.microBatches", o.microBatches, 1);
  checkKnownKeys("compose.deviceMs", o.deviceMs, COMPOSE_DEFAULTS.deviceMs);
  for (const pass of ["F", "B", "W"] as const) checkRange(`compose.deviceMs.${pass}`, o.deviceMs[pass], 0, Infinity);
  return o;
}

/** (dp, pp, tp) coordinates of `rank` on the mesh: rank = (dp * pp + pp_coord) * tp + tp_coord. */
export function meshCoordinates(rank: number, mesh: MeshDegrees): Record<MeshDimension, number> {
  return { dp: Math.floor(rank / (mesh.pp * mesh.tp)), pp: Math.floor(rank / mesh.tp) % mesh.pp, tp: rank % mesh.tp };
}

/** The mesh dimension of a communicator group named by compose's mesh ("tp[0,1]" -> "tp"); undefined for other groups. */
export function meshDimensionOf(group: string): MeshDimension | undefined {
  return meshDimensionOfGroup(group);
}

/**
 * Throws, naming the values, before anything runs: degrees not positive integers or not
 * multiplying to the world size; a schedule TP inside pipeline stages does not run (interleaved,
 * zb-h1); hidden size or head count not divisible by tp; more pipeline stages than the model's
 * layers; fewer micro-batches than the schedule needs.
 */
export function validateComposition(model: Pick<TinyGpt, "options" | "stages">, mesh: MeshDegrees, worldSize: number, options: ComposeOptions): void {
  checkKnownKeys("compose mesh", mesh, { dp: 1, tp: 1, pp: 1 });
  for (const d of MESH_DIMENSIONS) checkInteger(`compose: mesh.${d}`, mesh[d], 1);
  const product = mesh.dp * mesh.tp * mesh.pp;
  if (product !== worldSize) {
    throw new RangeError(`compose: mesh dp=${mesh.dp} x tp=${mesh.tp} x pp=${mesh.pp} = ${product}, but the world has ${worldSize} ranks`);
  }
  if (mesh.tp > 1) checkTensorParallelShape(model.options, mesh.tp);
  if (mesh.pp > 1) {
    const layers = model.options.nLayer;
    // The tiny GPT's pipeline stages are its embedding, nLayer blocks and head.
    if (mesh.pp > model.stages.length) {
      throw new RangeError(`compose: ${mesh.pp} pipeline stages (mesh.pp) need at least ${mesh.pp} layers, but the model has ${model.stages.length} (embedding, tinyGpt.nLayer = ${layers} blocks, head)`);
    }
    if (mesh.tp > 1 && !TENSOR_PIPELINE_SCHEDULES.includes(options.schedule)) {
      throw new RangeError(`compose: schedule ${options.schedule} with mesh.tp = ${mesh.tp} inside mesh.pp = ${mesh.pp} stages is not built; tensor parallelism inside pipeline stages runs ${TENSOR_PIPELINE_SCHEDULES.join(" or ")}`);
    }
    validatePipelineShape(options.schedule, mesh.pp, options.microBatches, 1, model.stages.length);
  }
}

export interface ComposedStep {
  /** the global batch's mean loss, the same on every rank */
  loss: number;
  /** d loss / d parameter after the DP average, by index into the full model's params; only this rank's (TP shards, PP stage layers) */
  grads: Map<number, Float32Array>;
}

/** `dist` of a %%distributed cell (its comm builds the mesh, its span records) or a bare Communicator (tests). */
type DistLike = { comm: Communicator; span?: unknown } | Communicator;

export class ParallelPlan {
  readonly options: ComposeOptions;
  readonly mesh: DeviceMesh;
  /** this rank's (dp, pp, tp) coordinates */
  readonly coords: Record<MeshDimension, number>;
  readonly #tensor: TensorParallelGpt | undefined;
  readonly #pipeline: PipelineParallel | undefined;
  /** TP inside pipeline stages: this stage's model stages [start, end) */
  readonly #stageRange: { start: number; end: number } | undefined;
  readonly #dp: Communicator;
  readonly #dist: DistLike;
  #steps = 0;
  /** TP inside pipeline stages: most micro-batches' tapes this rank held at once, counted from the live tapes (1F1B: p - stage). */
  peakStagedMicroBatches = 0;

  /** Checks everything (validateComposition), then builds the mesh's groups and cuts the model. */
  constructor(
    readonly model: TinyGpt,
    dist: DistLike,
    readonly degrees: MeshDegrees,
    options: Partial<ComposeOptions> = {},
  ) {
    this.options = validateComposeOptions(options);
    const comm = "comm" in dist && dist.comm ? dist.comm : (dist as Communicator);
    validateComposition(model, degrees, comm.size, this.options);
    this.#dist = dist;
    this.mesh = comm.mesh([degrees.dp, degrees.pp, degrees.tp], [...MESH_DIMENSIONS]);
    this.coords = { dp: this.mesh.coords.dp!, pp: this.mesh.coords.pp!, tp: this.mesh.coords.tp! };
    this.#dp = this.mesh.axis("dp");
    if (degrees.pp > 1 && degrees.tp > 1) {
      this.#tensor = new TensorParallelGpt(model, this.mesh.axis("tp") as never);
      this.#stageRange = splitLayers(model.stages.length, degrees.pp)[this.coords.pp]!;
    } else if (degrees.pp > 1) {
      const span = (dist as { span?: unknown }).span;
      const ppDist = typeof span === "function" ? { comm: this.mesh.axis("pp"), span: span.bind(dist) } : this.mesh.axis("pp");
      const pipeline: Partial<PipelineOptions> = { schedule: this.options.schedule, microBatches: this.options.microBatches, lr: this.options.lr, deviceMs: this.options.deviceMs };
      this.#pipeline = new PipelineParallel(model, ppDist, pipeline);
    } else {
      this.#tensor = new TensorParallelGpt(model, this.mesh.axis("tp") as never);
    }
  }

  /** Rows of the global batch replica `coords.dp` trains on. */
  replicaBatch(batch: TensorBatch): TensorBatch {
    const rows = batch.x.shape[0]!;
    const dp = this.degrees.dp;
    if (rows % dp !== 0) throw new RangeError(`compose: a global batch of ${rows} samples does not split into mesh.dp = ${dp} equal replica batches`);
    const size = rows / dp;
    const start = this.coords.dp * size;
    return { x: tf.slice(batch.x, start, size), y: tf.slice(batch.y, start, size) };
  }

  /** The gradients of the global `batch` (the same batch on every rank), averaged over DP; updates nothing. */
  async gradients(batch: TensorBatch): Promise<ComposedStep> {
    const replica = this.replicaBatch(batch);
    let loss: number;
    const grads = new Map<number, Float32Array>();
    try {
      if (this.#stageRange) {
        loss = await this.#tensorPipelineGradients(replica, grads);
      } else if (this.#tensor) {
        await this.#tensor.forward(replica);
        const out = await this.#tensor.backward();
        loss = out.loss;
        out.grads.forEach((g, i) => grads.set(i, g));
      } else {
        const out = await this.#pipeline!.gradients(replica);
        for (const [i, g] of this.#pipeline!.lastGradients) grads.set(i, g);
        // Only the last stage knows the loss; share it along the pipeline.
        const pp = this.mesh.axis("pp");
        const isLast = this.coords.pp === this.degrees.pp - 1;
        loss = (await pp.allReduce(Float32Array.of(isLast ? out.loss : 0), { op: "sum" }))[0]!;
      }
    } finally {
      tf.dispose([replica.x, replica.y]);
    }
    // DP: one allReduce of every local gradient and the loss, flat; sum / dp is the mean.
    const indices = [...grads.keys()].sort((a, b) => a - b);
    const total = indices.reduce((n, i) => n + grads.get(i)!.length, 1);
    const flat = new Float32Array(total);
    let offset = 0;
    for (const i of indices) {
      flat.set(grads.get(i)!, offset);
      offset += grads.get(i)!.length;
    }
    flat[offset] = loss;
    const summed = this.degrees.dp > 1 ? await withSpan(this.#dist, "dp gradient allReduce", () => this.#dp.allReduce(flat, { op: "sum" }), "comm", { group: this.#dp.name }) : flat;
    offset = 0;
    for (const i of indices) {
      const g = grads.get(i)!;
      for (let k = 0; k < g.length; k++) g[k] = summed[offset + k]! / this.degrees.dp;
      offset += g.length;
    }
    return { loss: summed[offset]! / this.degrees.dp, grads };
  }

  /**
   * TP inside pipeline stages: the replica batch in m micro-batches, run in this stage's order
   * of the pipeline schedule (1F1B or GPipe, pipeline-schedules.ts): forwards send activations
   * [s, b/m, C] down the pp group, backwards send their gradients up, each stage's blocks
   * tensor-parallel in its tp group. All TP peers of a stage follow the same schedule, so their
   * allReduces pair up in the same order. Fills `grads` with this stage's parameters'
   * gradients of the mean loss; returns the loss on every rank.
   */
  async #tensorPipelineGradients(replica: TensorBatch, grads: Map<number, Float32Array>): Promise<number> {
    const tp = this.#tensor!;
    const range = this.#stageRange!;
    const pp = this.mesh.axis("pp");
    const stage = this.coords.pp;
    const last = this.degrees.pp - 1;
    const { microBatches: m, schedule, deviceMs } = this.options;
    const rows = replica.x.shape[0]!;
    if (rows % m !== 0) throw new RangeError(`compose: a replica batch of ${rows} samples does not split into compose.microBatches = ${m} equal micro-batches`);
    const size = rows / m;
    const seq = replica.x.shape[1]!;
    const boundary = [seq, size, this.model.options.nEmbd]; // [s, b/m, C], TensorParallelGpt's layout
    const elements = boundary.reduce((a, b) => a * b, 1);
    const step = this.#steps++;
    const micro = Array.from({ length: m }, (_, mb) => ({ x: tf.slice(replica.x, mb * size, size), y: tf.slice(replica.y, mb * size, size) }));
    // Sends are not awaited one by one: under 1F1B a stage sends an activation while its
    // neighbour sends it a gradient. Between two ranks messages arrive in the order sent, and
    // each direction carries one kind (activations down, gradients up) in micro-batch order.
    const sends: Promise<void>[] = [];
    let lossSum = 0;
    try {
      for (const op of buildSchedule(schedule, this.degrees.pp, m)[stage]!) {
        const mb = op.microBatch;
        const args = { stage, microbatch: mb, pass: op.kind, schedule, microBatches: m, step, tp: this.coords.tp, dp: this.coords.dp };
        if (op.kind === "F") {
          // Waiting for the message is the comm layer's span; the pass's span holds its compute only.
          const input = stage > 0 ? tf.tensor(await pp.irecv(new Float32Array(elements), stage - 1), boundary) : undefined;
          const { output, loss } = await withSpan(this.#dist, `forward ${mb}`, async () => {
            const out = await tp.forwardStage(micro[mb]!, range, input, mb);
            occupyDevice(deviceMs.F);
            return out;
          }, "compute", args);
          if (output) {
            sends.push(pp.isend(((await output.data()) as Float32Array).slice(), stage + 1));
            output.dispose();
          }
          if (loss !== undefined) lossSum += loss;
        } else {
          const dOut = stage < last ? tf.tensor(await pp.irecv(new Float32Array(elements), stage + 1), boundary) : undefined;
          const dInput = await withSpan(this.#dist, `backward ${mb}`, async () => {
            const d = await tp.backwardStage(dOut, 1 / m, grads, mb);
            occupyDevice(deviceMs.B + deviceMs.W);
            return d;
          }, "compute", args);
          dOut?.dispose();
          if (dInput) {
            sends.push(pp.isend(((await dInput.data()) as Float32Array).slice(), stage - 1));
            dInput.dispose();
          }
        }
        this.peakStagedMicroBatches = Math.max(this.peakStagedMicroBatches, tp.stagedMicroBatches);
      }
      await Promise.all(sends);
    } catch (error) {
      tp.release();
      throw error;
    } finally {
      tf.dispose(micro.flatMap((b) => [b.x, b.y]));
    }
    // Only the last stage knows the loss; share it along the pipeline.
    return (await pp.allReduce(Float32Array.of(stage === last ? lossSum / m : 0), { op: "sum" }))[0]!;
  }

  /** One training step on the global `batch`: gradients, then SGD on this rank's parameters; returns the loss. */
  async step(batch: TensorBatch): Promise<number> {
    const { loss, grads } = await this.gradients(batch);
    withSpan(this.#dist, "sgd", () => {
      for (const [i, g] of grads) {
        const p = this.localParam(i);
        tf.tidy(() => p.assign(tf.sub(p, tf.mul(tf.tensor(g, p.shape), this.options.lr))));
      }
    });
    return loss;
  }

  /** The variable this rank updates for the full model's parameter i: its TP shard, or the model's own under PP. */
  localParam(i: number): tf.Variable {
    return this.#tensor ? this.#tensor.params[i]! : this.model.params[i]!;
  }

  /** This rank's part of full-model arrays (one per parameter), to compare with one rank's gradients. */
  async shardOf(full: readonly Float32Array[]): Promise<Map<number, Float32Array>> {
    const out = new Map<number, Float32Array>();
    if (this.#stageRange) {
      const shards = await this.#tensor!.shardOf(full);
      const { start, end } = this.#stageRange;
      const nStages = this.model.stages.length;
      // Parameter indices of model stages [start, end): embedding 2, a block 12, the head 3.
      const first = start === 0 ? 0 : 2 + 12 * (start - 1);
      const stop = end === nStages ? this.model.params.length : 2 + 12 * (end - 1);
      for (let i = first; i < stop; i++) out.set(i, shards[i]!);
    } else if (this.#tensor) (await this.#tensor.shardOf(full)).forEach((g, i) => out.set(i, g));
    else for (const i of this.#pipeline!.lastGradients.keys()) out.set(i, full[i]!);
    return out;
  }

  dispose(): void {
    this.#tensor?.dispose();
  }
}

/** One step applying DP, then TP or PP inside each replica, on the mesh {dp, tp, pp}: see ParallelPlan. */
export function compose(model: TinyGpt, dist: DistLike, mesh: MeshDegrees, options: Partial<ComposeOptions> = {}): ParallelPlan {
  return new ParallelPlan(model, dist, mesh, options);
}
