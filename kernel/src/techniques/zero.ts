/**
 * ZeRO (Rajbhandari et al. 2019): data parallelism whose model states are
 * sharded over the n ranks instead of replicated. With psi parameters trained
 * by float32 Adam, plain data parallelism holds on every rank
 *   parameters 4 psi + gradients 4 psi + Adam moments (m, v) 8 psi = 16 psi bytes.
 * (The paper's accounting is mixed precision: 2 psi + 2 psi + K psi with K = 12
 * for the fp32 master copy, momentum and variance. Here everything is float32
 * and there is no master copy, so K = 8 and the parameters and gradients take 4
 * bytes each.) The stages shard one more state each:
 *   stage 1 (P_os):     4 psi + 4 psi + 8 psi / n   moments sharded;
 *   stage 2 (P_os+g):   4 psi + (4 psi + 8 psi) / n gradients reduce-scattered, each rank keeps its shard;
 *   stage 3 (P_os+g+p): 16 psi / n                  parameters sharded too (fully sharded data parallel).
 * Stage 0 is plain data parallelism with the same Adam, the control.
 *
 * Per step, each rank sends (ring collectives over each unit's flat vector,
 * zero-shards.ts; P = psi padded so n divides every unit):
 *   stage 0     one allReduce(mean) of the gradients:                2 psi (n - 1) / n elements;
 *   stages 1-2  reduce-scatter(mean) of the gradients, Adam on the rank's shard,
 *               all-gather of the updated parameter shards:           2 P (n - 1) / n;
 *   stage 3     all-gather of a unit's parameters before its forward, again before
 *               its backward (freed after each use), reduce-scatter of its gradients
 *               as soon as backward has them, Adam on the shard:      3 P (n - 1) / n.
 *
 * Transient buffers, not in the figures above: one unit's gathered parameters and
 * gradients during forward and backward (stage 3; `peakGatheredBytes` records the
 * most held at once), one unit's flat parameters while its shard is updated
 * (stages 0-2), and the activations of forward.
 *
 * Backward runs one unit at a time, last first (tf.grads of each stage with its
 * upstream gradient, as staged-backward.ts does), so stages 2 and 3 hand a unit's
 * gradient to its reduce-scatter and drop it before the next unit's exists. All
 * stages, the control included, run this same backward, so their losses compare
 * like with like.
 */
import * as tf from "@tensorflow/tfjs";
import { withSpan, withStep } from "./span";
import type { StagedModel, StepResult } from "./types";
import { checkKnownKeys, checkRange } from "./validate";
import { FlatAdam } from "./zero-adam";
import { flattenUnit, planShards, unflattenUnit, type ShardPlan, type UnitShard } from "./zero-shards";

export type ZeroStage = 0 | 1 | 2 | 3;
export const ZERO_STAGES: readonly ZeroStage[] = [0, 1, 2, 3];

export interface ZeroOptions {
  /** 1, 2 or 3: what is sharded (see above); 0: nothing, plain data parallelism with the same Adam. Default 1. */
  stage: ZeroStage;
  /** Adam learning rate. Default 1e-3. */
  lr: number;
  /** Adam first-moment decay in [0, 1). Default 0.9. */
  beta1: number;
  /** Adam second-moment decay in [0, 1). Default 0.999. */
  beta2: number;
  /** Adam denominator term, > 0. Default 1e-8. */
  epsilon: number;
}

export const ZERO_DEFAULTS: ZeroOptions = { stage: 1, lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

export function validateZeroOptions(options: Partial<ZeroOptions>): ZeroOptions {
  checkKnownKeys("zero", options, ZERO_DEFAULTS);
  const o = { ...ZERO_DEFAULTS, ...options };
  if (!ZERO_STAGES.includes(o.stage)) {
    throw new RangeError(`zero.stage must be 1, 2 or 3 (or 0, plain data parallelism), got ${typeof o.stage === "string" ? JSON.stringify(o.stage) : String(o.stage)}`);
  }
  checkRange("zero.lr", o.lr, 0, Infinity, { low: true });
  checkRange("zero.beta1", o.beta1, 0, 1, { high: true });
  checkRange("zero.beta2", o.beta2, 0, 1, { high: true });
  checkRange("zero.epsilon", o.epsilon, 0, Infinity, { low: true, high: true });
  return o;
}

/** The collectives ZeRO uses; `dist` of a `%%distributed` cell (or a group of it) satisfies it. */
export interface ZeroCollectives {
  readonly rank: number;
  readonly size: number;
  allReduce(x: Float32Array, options?: { op?: "mean"; algorithm?: "ring"; out?: Float32Array }): Promise<Float32Array>;
  reduceScatter(x: Float32Array, options?: { op?: "mean"; algorithm?: "ring" }): Promise<Float32Array>;
  allGather(x: Float32Array, options?: { algorithm?: "ring" }): Promise<Float32Array>;
}

/** Bytes of the model states a rank holds, by state, from the buffers themselves. */
export interface ZeroHeldBytes {
  parameters: number;
  gradients: number;
  /** Adam's m and v */
  optimizer: number;
  total: number;
}

/** The float32-Adam adaptation of the paper's per-rank model-state bytes for psi parameters on n ranks. */
export function zeroHeldBytesFormula(stage: ZeroStage, psi: number, n: number): ZeroHeldBytes {
  const parameters = stage === 3 ? (4 * psi) / n : 4 * psi;
  const gradients = stage >= 2 ? (4 * psi) / n : 4 * psi;
  const optimizer = stage >= 1 ? (8 * psi) / n : 8 * psi;
  return { parameters, gradients, optimizer, total: parameters + gradients + optimizer };
}

/** Elements a rank sends per step by the formula: 2 psi (n - 1) / n for stages 0-2, 3 psi (n - 1) / n for stage 3. */
export function zeroWireElementsFormula(stage: ZeroStage, psi: number, n: number): number {
  return ((stage === 3 ? 3 : 2) * psi * (n - 1)) / n;
}

const RING = { algorithm: "ring" } as const;

export class Zero<B> {
  readonly options: ZeroOptions;
  /** The units and shards (stage 0: one "shard" of the whole unit, n = 1). */
  readonly plan: ShardPlan;
  /** Steps taken so far; the next step's number on the timeline. */
  stepsTaken = 0;
  /** Most bytes of gathered parameters and unit gradients held at once during a step (stage 3), from the live tensors. */
  peakGatheredBytes = 0;

  readonly #adam: FlatAdam[];
  /** stages 0 and 1: every unit's gradient back to back [sum P_u] */
  readonly #fullGradients?: Float32Array;
  /** stages 2 and 3: this rank's shard of each unit's averaged gradient [S_u] */
  readonly #gradientShards?: Float32Array[];
  /** stage 3: this rank's shard of each unit's parameters [S_u]; the model's variables are disposed */
  readonly #parameterShards?: Float32Array[];
  /** stage 3: gathered parameter tensors alive now */
  readonly #gathered = new Set<tf.Tensor>();

  private constructor(
    readonly model: StagedModel<B>,
    readonly comm: ZeroCollectives,
    options: ZeroOptions,
    plan: ShardPlan,
    parameterShards?: Float32Array[],
  ) {
    this.options = options;
    this.plan = plan;
    const stage = options.stage;
    this.#adam = plan.units.map((u) => new FlatAdam(u.shardLength, options));
    if (stage <= 1) this.#fullGradients = new Float32Array(plan.padded);
    else this.#gradientShards = plan.units.map((u) => new Float32Array(u.shardLength));
    this.#parameterShards = parameterShards;
  }

  /**
   * Shards `model` over the ranks of `comm`. Every rank must start from the same
   * parameters (build the model from one seed). Stage 3 takes the parameters
   * over: it copies this rank's shards and disposes the model's variables (read
   * them back with gatherParameters()).
   */
  static async create<B>(model: StagedModel<B>, comm: ZeroCollectives, options: Partial<ZeroOptions> = {}): Promise<Zero<B>> {
    const o = validateZeroOptions(options);
    checkModel(model);
    checkComm(comm);
    const units = model.stages.map((s) => ({ name: s.name, shapes: s.params.map((p) => p.shape) }));
    const plan = o.stage === 0 ? planShards(units, 1, 0) : planShards(units, comm.size, comm.rank);
    let parameterShards: Float32Array[] | undefined;
    if (o.stage === 3) {
      parameterShards = [];
      for (const [i, unit] of plan.units.entries()) {
        const flat = await flattenUnit(unit, model.stages[i]!.params);
        parameterShards.push(flat.slice(unit.shardStart, unit.shardStart + unit.shardLength));
      }
      for (const stage of model.stages) for (const p of stage.params) p.dispose();
    }
    return new Zero(model, comm, o, plan, parameterShards);
  }

  get stage(): ZeroStage {
    return this.options.stage;
  }

  /** One line on the layout, the padding included: "stage 2 on 3 ranks: ...". */
  describe(): string {
    const n = this.stage === 0 ? 1 : this.comm.size;
    const padding = this.plan.padding > 0
      ? `; ${n} does not divide every unit, so the units are padded with ${this.plan.padding} zeros to ${this.plan.padded} (each collective moves the padded sizes)`
      : "";
    return `ZeRO stage ${this.stage} on ${this.comm.size} ranks: ${this.plan.size} parameters in ${this.plan.units.length} units (${this.plan.units.map((u) => u.name).join(", ")})${padding}`;
  }

  /** The model-state bytes this rank holds now, summed over the live buffers and variables. */
  heldBytes(): ZeroHeldBytes {
    // the model's variables still alive (stages 0-2: all of them; stage 3: none) and the parameter shards
    const variables = this.model.stages.reduce((sum, s) => sum + s.params.reduce((n, p) => n + (p.isDisposed ? 0 : p.size * 4), 0), 0);
    const parameters = variables + (this.#parameterShards ? sumBytes(this.#parameterShards) : 0);
    const gradients = this.#fullGradients ? this.#fullGradients.byteLength : sumBytes(this.#gradientShards!);
    const optimizer = this.#adam.reduce((sum, a) => sum + a.bytes, 0);
    return { parameters, gradients, optimizer, total: parameters + gradients + optimizer };
  }

  /** Bytes of gathered parameter tensors alive now (stage 3: 0 between units). */
  gatheredBytes(): number {
    let bytes = 0;
    for (const t of this.#gathered) if (!t.isDisposed) bytes += t.size * 4;
    return bytes;
  }

  /** One training step on this rank's batch: forward, backward, the stage's sync, Adam. Every rank calls it. */
  step(batch: B): Promise<StepResult> {
    const t = ++this.stepsTaken;
    return withStep(this.comm, t - 1, async () => {
      const loss = await this.forwardBackward(batch);
      await withSpan(this.comm, "optimizer (Adam)", () => this.update(t));
      return { loss };
    });
  }

  /** Every parameter, flat [psi] in Model.params order, on every rank (stage 3 gathers: every rank calls it). */
  async gatherParameters(): Promise<Float32Array> {
    const out = new Float32Array(this.plan.size);
    let offset = 0;
    for (const [i, unit] of this.plan.units.entries()) {
      const flat = this.#parameterShards
        ? await this.comm.allGather(this.#parameterShards[i]!, RING)
        : await flattenUnit(unit, this.model.stages[i]!.params);
      out.set(flat.subarray(0, unit.size), offset);
      offset += unit.size;
    }
    return out;
  }

  /** Frees gathered parameter tensors still alive (after a step that failed half-way); shards and moments are plain arrays, the variables of stages 0-2 stay the caller's. */
  dispose(): void {
    tf.dispose([...this.#gathered]);
    this.#gathered.clear();
  }

  /** Forward unit by unit, then backward unit by unit (last first); each unit's gradients go to `takeGradients`. */
  private async forwardBackward(batch: B): Promise<number> {
    const stages = this.model.stages;
    // activations[i] is unit i's input; activations[stages.length] the model's output [batch, time, vocab]
    const activations: tf.Tensor[] = [this.model.input(batch)];
    try {
      for (const [i, stage] of stages.entries()) {
        const output = await withSpan(this.comm, `forward ${stage.name}`, async () => {
          const params = await this.unitParameters(i);
          try {
            return tf.tidy(() => stage.forward(activations[i]!, params));
          } finally {
            this.release(params);
          }
        });
        activations.push(output);
      }
      let lossTensor: tf.Tensor | undefined;
      let dy: tf.Tensor = tf.tidy(() => {
        const { value, grads } = tf.valueAndGrads((out: tf.Tensor) => this.model.head(out, batch))([activations[stages.length]!]);
        lossTensor = tf.keep(value);
        return grads[0]!;
      });
      const loss = lossTensor!.data().then((v) => v[0]!).finally(() => lossTensor!.dispose());
      for (let i = stages.length - 1; i >= 0; i--) {
        const stage = stages[i]!;
        dy = await withSpan(this.comm, `backward ${stage.name}`, async () => {
          const params = await this.unitParameters(i);
          const input = activations[i]!;
          const needInput = stage.differentiableInput && i > 0;
          let grads: tf.Tensor[];
          try {
            grads = tf.tidy(() => {
              const f = needInput ? (x: tf.Tensor, ...ps: tf.Tensor[]) => stage.forward(x, ps) : (...ps: tf.Tensor[]) => stage.forward(input, ps);
              return tf.grads(f)(needInput ? [input, ...params] : params, dy);
            });
          } finally {
            dy.dispose();
          }
          const paramGrads = needInput ? grads.slice(1) : grads;
          // the unit's parameters and its gradients, both whole, are the most stage 3 holds at once
          this.noteGathered(paramGrads);
          this.release(params);
          try {
            await this.takeGradients(i, paramGrads);
          } finally {
            tf.dispose(paramGrads);
          }
          return needInput ? grads[0]! : tf.scalar(0);
        });
      }
      dy.dispose();
      return await loss;
    } finally {
      tf.dispose(activations.slice(1));
    }
  }

  /** Unit i's parameters: the model's variables, or (stage 3) gathered from every rank's shard. */
  private async unitParameters(i: number): Promise<tf.Tensor[]> {
    if (!this.#parameterShards) return this.model.stages[i]!.params;
    const flat = await this.comm.allGather(this.#parameterShards[i]!, RING);
    const params = unflattenUnit(this.plan.units[i]!, flat);
    for (const p of params) this.#gathered.add(p);
    this.noteGathered([]);
    return params;
  }

  /** Frees gathered parameters after their use (stage 3); the variables of stages 0-2 stay. */
  private release(params: tf.Tensor[]): void {
    if (!this.#parameterShards) return;
    for (const p of params) {
      this.#gathered.delete(p);
      p.dispose();
    }
  }

  /** Updates the peak from the gathered parameters alive plus `extra` (a unit's gradients). */
  private noteGathered(extra: readonly tf.Tensor[]): void {
    if (!this.#parameterShards) return;
    const bytes = this.gatheredBytes() + extra.reduce((n, t) => n + t.size * 4, 0);
    this.peakGatheredBytes = Math.max(this.peakGatheredBytes, bytes);
  }

  /** Unit i's gradients, as backward produces them: kept whole (stages 0, 1) or reduce-scattered into the shard (2, 3). */
  private async takeGradients(i: number, grads: readonly tf.Tensor[]): Promise<void> {
    const unit = this.plan.units[i]!;
    const flat = await flattenUnit(unit, grads);
    if (this.#fullGradients) {
      this.#fullGradients.set(flat, this.unitOffset(i));
      return;
    }
    const shard = await this.comm.reduceScatter(flat, { op: "mean", ...RING });
    this.#gradientShards![i]!.set(shard);
  }

  /** The sync that is left after backward, then Adam on this rank's shard of every unit. */
  private async update(t: number): Promise<void> {
    const full = this.#fullGradients;
    if (this.stage === 0) await this.comm.allReduce(full!, { op: "mean", ...RING, out: full! });
    for (const [i, unit] of this.plan.units.entries()) {
      const adam = this.#adam[i]!;
      if (this.stage === 3) {
        adam.step(this.#parameterShards![i]!, this.#gradientShards![i]!, t);
        continue;
      }
      const offset = this.unitOffset(i);
      const grads = this.stage === 0
        ? full!.subarray(offset, offset + unit.padded)
        : this.stage === 1
          ? await this.comm.reduceScatter(full!.slice(offset, offset + unit.padded), { op: "mean", ...RING })
          : this.#gradientShards![i]!;
      const params = await flattenUnit(unit, this.model.stages[i]!.params);
      const shard = params.slice(unit.shardStart, unit.shardStart + unit.shardLength);
      adam.step(shard, grads, t);
      const updated = this.stage === 0 ? shard : await this.comm.allGather(shard, RING);
      assignUnit(unit, this.model.stages[i]!.params, updated);
    }
  }

  /** Where unit i starts in the back-to-back vector of padded units. */
  private unitOffset(i: number): number {
    return this.plan.units.slice(0, i).reduce((sum, u) => sum + u.padded, 0);
  }
}

function assignUnit(unit: UnitShard, variables: readonly tf.Variable[], flat: Float32Array): void {
  const values = unflattenUnit(unit, flat);
  variables.forEach((v, j) => v.assign(values[j]!));
  tf.dispose(values);
}

function sumBytes(arrays: readonly Float32Array[]): number {
  return arrays.reduce((sum, a) => sum + a.byteLength, 0);
}

function checkModel(model: unknown): void {
  const m = model as Partial<StagedModel<unknown>> | null;
  if (!m || !Array.isArray(m.stages) || m.stages.length === 0 || typeof m.input !== "function" || typeof m.head !== "function") {
    throw new TypeError("zero: the model must be a staged model (stages, input(batch), head(output, batch)), as distlab/models' createTinyGpt, createMlp and createLinearChain are");
  }
}

function checkComm(comm: unknown): void {
  const c = comm as Partial<ZeroCollectives> | null;
  for (const name of ["allReduce", "reduceScatter", "allGather"] as const) {
    if (typeof c?.[name] !== "function") throw new TypeError(`zero: the communicator has no ${name}; pass dist (or a group of it)`);
  }
}
