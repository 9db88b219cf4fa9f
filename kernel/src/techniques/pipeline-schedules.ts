/**
 * Pipeline schedules: for each of p stages (ranks), the order in which it
 * runs the forward and backward passes of m micro-batches over its model
 * chunks. Pure data; pipeline-parallel.ts runs them over real sends and
 * receives.
 *
 * Ops (one micro-batch through one model chunk):
 *   F   forward, keeps the chunk's input (the stash) for backward;
 *   BW  backward: the input gradient (sent upstream) and the weight gradients at once;
 *   B   the input gradient only (ZB: the critical path upstream);
 *   W   the weight gradients only, from the stash and the B's output gradient; frees the stash.
 * With v chunks per stage (interleaved), global chunk c lives on stage c % p,
 * so a micro-batch goes round the stages v times.
 *
 * Schedules (p stages, m micro-batches, v chunks a stage):
 *   gpipe        all forwards, then all backwards (Huang et al. 2019). Idle share
 *                (p-1)/(m+p-1); each stage stashes all m micro-batches.
 *   1f1b         PipeDream-Flush (Narayanan et al. 2021): stage r runs p-r-1 warm-up
 *                forwards, then one forward one backward; same bubble as GPipe
 *                but at most p-r micro-batches stashed on stage r.
 *   interleaved  Megatron-LM's interleaved 1F1B (Narayanan et al. 2021, §2.2): v chunks
 *                per stage, bubble (p-1)/(v m) of the ideal time; m a multiple of p.
 *   zb-h1        zero bubble H1 (Qi et al. 2023): 1F1B's order with backward split into
 *                B and W; stage r holds back r W passes, which fill the cool-down's
 *                waits, at 1F1B's peak memory (at most p micro-batches held until their W,
 *                on every stage). With T_F = T_B = T_W the bubble is (p-1)(T_F+T_B-T_W),
 *                a third of 1F1B's (p-1)(T_F+T_B+T_W).
 */
import { checkInteger, checkOneOf } from "./validate";

export type PipelineScheduleName = "gpipe" | "1f1b" | "interleaved" | "zb-h1";
export const PIPELINE_SCHEDULES: readonly PipelineScheduleName[] = ["gpipe", "1f1b", "interleaved", "zb-h1"];

export type PipelineOpKind = "F" | "B" | "W" | "BW";

export interface PipelineOp {
  kind: PipelineOpKind;
  microBatch: number;
  /** global model chunk, 0 .. p*v - 1; lives on stage chunk % p */
  chunk: number;
}

/** ops[r] is stage r's order. */
export type PipelineSchedule = PipelineOp[][];

/** The fewest micro-batches a schedule accepts at p stages (and the multiple it needs, if any). */
export function microBatchesNeeded(schedule: PipelineScheduleName, stages: number): { min: number; multipleOf: number } {
  if (schedule === "gpipe") return { min: 1, multipleOf: 1 };
  // 1F1B and ZB-H1: stage 0 runs p-1 warm-up forwards before its first backward; with fewer
  // micro-batches no stage reaches the one-forward-one-backward steady state.
  // Interleaved: Megatron asserts num_microbatches % pipeline_size == 0, the micro-batches go
  // round the stages in groups of p.
  return { min: stages, multipleOf: schedule === "interleaved" ? stages : 1 };
}

/**
 * Fails before anything runs when the schedule cannot be built: names the values.
 * `layers` is the number of model stages (layers) to split into p*v chunks.
 */
export function validatePipelineShape(schedule: PipelineScheduleName, stages: number, microBatches: number, chunks: number, layers: number): void {
  checkOneOf("pipeline.schedule", schedule, PIPELINE_SCHEDULES);
  checkInteger("pipeline.stages", stages, 1);
  checkInteger("pipeline.microBatches", microBatches, 1);
  checkInteger("pipeline.chunks", chunks, 1);
  if (schedule !== "interleaved" && chunks !== 1) {
    throw new RangeError(`pipeline.chunks is ${chunks}, but only the interleaved schedule runs several chunks a stage (schedule ${schedule})`);
  }
  if (stages * chunks > layers) {
    const what = chunks === 1 ? `${stages} pipeline stages` : `${stages} pipeline stages x ${chunks} chunks = ${stages * chunks} model chunks`;
    throw new RangeError(`${what} need at least ${stages * chunks} layers, but the model has ${layers}`);
  }
  const { min, multipleOf } = microBatchesNeeded(schedule, stages);
  if (microBatches < min || microBatches % multipleOf !== 0) {
    const need = multipleOf > 1 ? `a multiple of ${multipleOf} (the stages), at least ${min}` : `at least ${min} (one per stage)`;
    throw new RangeError(`pipeline.microBatches is ${microBatches}, but the ${schedule} schedule on ${stages} stages needs ${need}`);
  }
}

/** Every stage's op order for the schedule. */
export function buildSchedule(schedule: PipelineScheduleName, stages: number, microBatches: number, chunks = 1): PipelineSchedule {
  validatePipelineShape(schedule, stages, microBatches, chunks, stages * chunks);
  switch (schedule) {
    case "gpipe":
      return gpipe(stages, microBatches);
    case "1f1b":
      return oneForwardOneBackward(stages, microBatches);
    case "interleaved":
      return interleaved(stages, microBatches, chunks);
    case "zb-h1":
      return zeroBubbleH1(stages, microBatches);
  }
}

function gpipe(p: number, m: number): PipelineSchedule {
  return Array.from({ length: p }, (_, r) => [
    ...Array.from({ length: m }, (_, i): PipelineOp => ({ kind: "F", microBatch: i, chunk: r })),
    // Backwards in micro-batch order on every stage, so each pair of stages exchanges
    // gradients in the order both expect.
    ...Array.from({ length: m }, (_, i): PipelineOp => ({ kind: "BW", microBatch: i, chunk: r })),
  ]);
}

function oneForwardOneBackward(p: number, m: number): PipelineSchedule {
  return Array.from({ length: p }, (_, r) => {
    const warmup = Math.min(p - r - 1, m);
    const ops: PipelineOp[] = [];
    for (let i = 0; i < warmup; i++) ops.push({ kind: "F", microBatch: i, chunk: r });
    for (let i = 0; i < m - warmup; i++) {
      ops.push({ kind: "F", microBatch: warmup + i, chunk: r });
      ops.push({ kind: "BW", microBatch: i, chunk: r });
    }
    for (let i = m - warmup; i < m; i++) ops.push({ kind: "BW", microBatch: i, chunk: r });
    return ops;
  });
}

/**
 * Megatron-LM's forward_backward_pipelining_with_interleaving: the k-th forward of a stage
 * is micro-batch floor(k / pv) p + k mod p on local chunk floor(k / p) mod v; backwards
 * walk the chunks in reverse. Warm-up (p-r-1) 2 + (v-1) p forwards (all of them when m = p).
 */
function interleaved(p: number, m: number, v: number): PipelineSchedule {
  const total = m * v;
  const microBatchOf = (k: number): number => Math.floor(k / (p * v)) * p + (k % p);
  const localChunkOf = (k: number, forward: boolean): number => {
    const chunk = Math.floor((k % (p * v)) / p);
    return forward ? chunk : v - 1 - chunk;
  };
  return Array.from({ length: p }, (_, r) => {
    const warmup = m === p ? total : Math.min((p - r - 1) * 2 + (v - 1) * p, total);
    const forward = (k: number): PipelineOp => ({ kind: "F", microBatch: microBatchOf(k), chunk: localChunkOf(k, true) * p + r });
    const backward = (k: number): PipelineOp => ({ kind: "BW", microBatch: microBatchOf(k), chunk: localChunkOf(k, false) * p + r });
    const ops: PipelineOp[] = [];
    for (let k = 0; k < warmup; k++) ops.push(forward(k));
    for (let k = 0; k < total - warmup; k++) {
      ops.push(forward(warmup + k));
      ops.push(backward(k));
    }
    for (let k = total - warmup; k < total; k++) ops.push(backward(k));
    return ops;
  });
}

/**
 * ZB-H1 (Qi et al. 2023, Figure 3): 1F1B's order with each backward split into B and W.
 * Stage r runs min(p-r-1, m) warm-up forwards as 1F1B does; then, per micro-batch i, the next
 * forward, B_i, and W_{i-r}: stage r holds back r weight-gradient passes, which fill the time it
 * would otherwise wait in the cool-down for gradients from downstream (there, B has only the
 * input gradient to compute, so gradients travel upstream in T_B a stage, not T_B + T_W).
 * At most p micro-batches are stashed on any stage, 1F1B's peak (stage 0's).
 */
function zeroBubbleH1(p: number, m: number): PipelineSchedule {
  return Array.from({ length: p }, (_, r) => {
    const warmup = Math.min(p - r - 1, m);
    const ops: PipelineOp[] = [];
    for (let i = 0; i < warmup; i++) ops.push({ kind: "F", microBatch: i, chunk: r });
    for (let i = 0; i < m; i++) {
      if (i + warmup < m) ops.push({ kind: "F", microBatch: i + warmup, chunk: r });
      ops.push({ kind: "B", microBatch: i, chunk: r });
      if (i - r >= 0) ops.push({ kind: "W", microBatch: i - r, chunk: r });
    }
    for (let i = Math.max(0, m - r); i < m; i++) ops.push({ kind: "W", microBatch: i, chunk: r });
    return ops;
  });
}

/** Op durations for simulate(), any unit. */
export interface OpTimes {
  F: number;
  B: number;
  W: number;
}

export interface SimulatedPipeline {
  /** per stage, [start, end) of each op in its schedule order */
  spans: { op: PipelineOp; start: number; end: number }[][];
  makespan: number;
  /** mean over stages of idle / busy time between the first op's start and the last op's end */
  bubbleOverIdeal: number;
  /** mean over stages of the idle share of that window */
  idleFraction: number;
}

/**
 * Runs a schedule on paper with fixed op times and free communication: what the timeline
 * would show on perfect hardware. BW takes B + W. Chunks of an interleaved stage each take
 * 1/v of the times given (the times are a whole stage's).
 */
export function simulateSchedule(schedule: PipelineSchedule, times: OpTimes, chunks = 1): SimulatedPipeline {
  const p = schedule.length;
  const done = new Map<string, number>(); // `${kind}:${chunk}:${mb}` -> end
  const cursor = new Array<number>(p).fill(0);
  const free = new Array<number>(p).fill(0);
  const spans: SimulatedPipeline["spans"] = Array.from({ length: p }, () => []);
  const lastChunk = p * chunks - 1;
  const duration = (kind: PipelineOpKind): number => (kind === "BW" ? times.B + times.W : times[kind]) / chunks;
  const dependency = (op: PipelineOp): string | null => {
    if (op.kind === "F") return op.chunk === 0 ? null : `F:${op.chunk - 1}:${op.microBatch}`;
    if (op.kind === "W") return null; // its own B came earlier on the same stage
    return op.chunk === lastChunk ? `F:${op.chunk}:${op.microBatch}` : `B:${op.chunk + 1}:${op.microBatch}`;
  };
  let left = schedule.reduce((n, ops) => n + ops.length, 0);
  while (left > 0) {
    let moved = false;
    for (let r = 0; r < p; r++) {
      const op = schedule[r]![cursor[r]!];
      if (!op) continue;
      const dep = dependency(op);
      const ready = dep === null ? 0 : done.get(dep);
      if (ready === undefined) continue;
      const start = Math.max(free[r]!, ready);
      const end = start + duration(op.kind);
      free[r] = end;
      spans[r]!.push({ op, start, end });
      // B and BW both hand the input gradient upstream.
      done.set(`${op.kind === "BW" ? "B" : op.kind}:${op.chunk}:${op.microBatch}`, end);
      cursor[r]! += 1;
      left--;
      moved = true;
    }
    if (!moved) throw new Error("simulateSchedule: the schedule deadlocks (a stage waits for an op no stage runs first)");
  }
  const first = Math.min(...spans.map((s) => s[0]?.start ?? Infinity));
  const makespan = Math.max(...spans.map((s) => s.at(-1)?.end ?? 0)) - first;
  let overIdeal = 0;
  let idle = 0;
  for (const stage of spans) {
    const busy = stage.reduce((t, s) => t + s.end - s.start, 0);
    overIdeal += (makespan - busy) / busy;
    idle += (makespan - busy) / makespan;
  }
  return { spans, makespan, bubbleOverIdeal: overIdeal / p, idleFraction: idle / p };
}
