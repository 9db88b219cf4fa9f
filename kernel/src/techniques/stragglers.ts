/**
 * Load imbalance and stragglers: one rank slowed by a factor, and three ways
 * to live with it (formulas in stragglers-policy.ts):
 * - "equal": B/n samples each, gradients averaged by allReduce; the step waits for the slowest.
 * - "proportional": batches proportional to each rank's measured throughput (LB-BSP), weighted mean by allReduce.
 * - "backup": equal batches; rank 0 gathers gradients by send/recv and steps with the first n-b to
 *   arrive (its own included); late ones are dropped (Chen et al. 2016, "Revisiting distributed synchronous SGD").
 *
 * Time per sample: the real gradient, plus `deviceMsPerSample` of emulated device time (a sleep), so that
 * ranks sharing a few CPU cores keep the independent speeds separate devices would have; the slow rank then
 * sleeps (slowFactor - 1) times what its compute took, i.e. it is slowFactor times slower.
 * Messages: gradient [step, batch, loss, ...batch * gradient] (3 + P); parameters [stop, step, ...params] (2 + P).
 */
import { withSpan } from "./span";
import type { Model, BatchFn, PeerCollectives } from "./types";
import { checkInteger, checkKnownKeys, checkOneOf, checkRange } from "./validate";
import { assignFlat, flatStepGradients, flattenTensors } from "./flat-vectors";
import { nowMs, sleep } from "./timing";
import { equalBatches, median, predictedStepMs, proportionalBatches, type StragglerPolicy } from "./stragglers-policy";

export interface StragglerOptions {
  policy: StragglerPolicy;
  /** training steps after calibration */
  steps: number;
  /** B: samples per step over all ranks */
  globalBatch: number;
  lr: number;
  /** the slowed rank (-1: none); for "backup" it may not be rank 0, which gathers */
  slowRank: number;
  /** >= 1: the slowed rank takes this many times as long per sample */
  slowFactor: number;
  /** b, "backup" only: the step proceeds with the first n - b gradients; 0 <= b < n */
  backups: number;
  /** emulated device time per sample, milliseconds */
  deviceMsPerSample: number;
  /** equal-batch steps timed first to measure each rank's ms per sample (not trained on) */
  calibrationSteps: number;
}

export const STRAGGLER_DEFAULTS: Omit<StragglerOptions, "policy" | "steps" | "globalBatch" | "lr"> = {
  slowRank: -1,
  slowFactor: 1,
  backups: 0,
  deviceMsPerSample: 0,
  calibrationSteps: 4,
};

export interface StragglerReport {
  policy: StragglerPolicy;
  /** samples per rank per step */
  batches: number[];
  /** calibrated ms per sample of each rank */
  msPerSample: number[];
  predictedStepMs: number;
  /** median step time after the first step, ms (rank 0's, on every rank) */
  measuredStepMs: number;
  /** rank 0's time of each step, ms */
  stepMs: number[];
  /** rank 0's loss on its own batch, per step */
  losses: number[];
  /** "backup": gradients that arrived after their step had closed */
  dropped: number;
}

type Given = Partial<StragglerOptions> & Pick<StragglerOptions, "policy" | "steps" | "globalBatch" | "lr">;

export function validateStragglerOptions(options: Given, size: number): StragglerOptions {
  checkKnownKeys("stragglers", options, { ...STRAGGLER_DEFAULTS, policy: 0, steps: 0, globalBatch: 0, lr: 0 });
  const o = { ...STRAGGLER_DEFAULTS, ...options };
  checkOneOf("stragglers.policy", o.policy, ["equal", "proportional", "backup"] as const);
  checkInteger("stragglers.steps", o.steps, 1);
  checkInteger("stragglers.globalBatch", o.globalBatch, size);
  checkRange("stragglers.lr", o.lr, 0, Infinity, { low: true, high: true });
  if (o.slowRank !== -1) checkInteger("stragglers.slowRank", o.slowRank, o.policy === "backup" ? 1 : 0, size - 1);
  checkRange("stragglers.slowFactor", o.slowFactor, 1, Infinity, { high: true });
  checkInteger("stragglers.backups", o.backups, 0, size - 1);
  if (o.policy !== "backup" && o.backups !== 0) throw new RangeError(`stragglers.backups is only for policy "backup", got ${o.backups} with "${o.policy}"`);
  checkRange("stragglers.deviceMsPerSample", o.deviceMsPerSample, 0, Infinity, { high: true });
  checkInteger("stragglers.calibrationSteps", o.calibrationSteps, 2);
  return o;
}

export async function stragglerTraining<B>(dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>, options: Given): Promise<StragglerReport> {
  const o = validateStragglerOptions(options, dist.size);
  let params = await dist.broadcast(await flattenTensors(model.params), 0);
  assignFlat(model.params, params);
  const compute = async (step: number, batch: number): Promise<{ loss: number; grads: Float32Array; ms: number }> => {
    const start = nowMs();
    const { loss, grads } = await withSpan(dist, "gradient", () => flatStepGradients(model, batches, step, batch));
    await withSpan(dist, "device time", () => sleep(o.deviceMsPerSample * batch));
    const ms = nowMs() - start;
    if (dist.rank === o.slowRank) await withSpan(dist, "slowed", () => sleep((o.slowFactor - 1) * ms));
    return { loss, grads, ms: nowMs() - start };
  };

  // Calibration: every rank times equal batches; the first step (warm-up of kernels) is left out.
  const equal = equalBatches(o.globalBatch, dist.size);
  const own: number[] = [];
  for (let k = 0; k < o.calibrationSteps; k++) {
    const { ms } = await compute(-1 - k, equal[dist.rank]!);
    if (k > 0) own.push(ms / equal[dist.rank]!);
    await dist.barrier();
  }
  const msPerSample = Array.from(await dist.allGather(Float64Array.of(median(own))));
  const sizes = o.policy === "proportional" ? proportionalBatches(msPerSample.map((c) => 1 / c), o.globalBatch) : equal;
  const predicted = predictedStepMs(o.policy, msPerSample, o.globalBatch, o.backups);

  const stepMs: number[] = [];
  const losses: number[] = [];
  let dropped = 0;
  if (o.policy === "backup") {
    dropped = await backupSteps(dist, model, o, sizes, compute, params, stepMs, losses);
  } else {
    const P = params.length;
    for (let step = 0; step < o.steps; step++) {
      const start = nowMs();
      const { loss, grads } = await compute(step, sizes[dist.rank]!);
      // Weighted mean: sum of batch * gradient and of batch sizes, in one allReduce.
      const message = new Float32Array(P + 1);
      for (let i = 0; i < P; i++) message[i] = grads[i]! * sizes[dist.rank]!;
      message[P] = sizes[dist.rank]!;
      const total = await withSpan(dist, "allReduce", () => dist.allReduce(message, { op: "sum" }));
      for (let i = 0; i < P; i++) params[i]! -= (o.lr * total[i]!) / total[P]!;
      assignFlat(model.params, params);
      stepMs.push(nowMs() - start);
      losses.push(loss);
    }
  }
  params = await dist.broadcast(await flattenTensors(model.params), 0);
  assignFlat(model.params, params);
  // Every rank reports rank 0's step times (with backup workers only rank 0 sees whole steps).
  const steps = Array.from(await dist.broadcast(Float64Array.from({ length: o.steps }, (_, i) => stepMs[i] ?? 0), 0));
  return { policy: o.policy, batches: sizes, msPerSample, predictedStepMs: predicted, measuredStepMs: median(steps.slice(1)), stepMs: steps, losses, dropped };
}

type Compute = (step: number, batch: number) => Promise<{ loss: number; grads: Float32Array; ms: number }>;

/** The backup-worker loop; returns the number of dropped gradients (rank 0) or 0. */
async function backupSteps<B>(
  dist: PeerCollectives, model: Model<B>, o: StragglerOptions, sizes: number[], compute: Compute,
  params: Float32Array, stepMs: number[], losses: number[],
): Promise<number> {
  const P = params.length;
  const n = dist.size;
  if (dist.rank !== 0) {
    const incoming = new Float32Array(2 + P);
    const outgoing = new Float32Array(3 + P);
    for (;;) {
      await withSpan(dist, "wait for parameters", () => dist.recv(incoming, 0));
      if (incoming[0] === 1) return 0;
      const step = incoming[1]!;
      assignFlat(model.params, incoming.subarray(2));
      const { loss, grads } = await compute(step, sizes[dist.rank]!);
      outgoing[0] = step;
      outgoing[1] = sizes[dist.rank]!;
      outgoing[2] = loss;
      for (let i = 0; i < P; i++) outgoing[3 + i] = grads[i]! * sizes[dist.rank]!;
      await dist.send(outgoing, 0);
    }
  }
  // Rank 0: each parameters message it sends is answered by exactly one gradient, so a receive is
  // posted only when parameters go out, and none is left hanging at the end.
  const posted = new Map<number, Promise<{ worker: number; message: Float32Array }>>();
  const waiting = new Set<number>();
  const sendParameters = async (worker: number, step: number, stop: boolean): Promise<void> => {
    const message = new Float32Array(2 + P);
    message[0] = stop ? 1 : 0;
    message[1] = step;
    message.set(params, 2);
    await dist.send(message, worker);
    if (!stop) posted.set(worker, dist.recv(new Float32Array(3 + P), worker).then((m) => ({ worker, message: m })));
  };
  for (let w = 1; w < n; w++) await sendParameters(w, 0, false);
  let dropped = 0;
  for (let step = 0; step < o.steps; step++) {
    const start = nowMs();
    const mine = await compute(step, sizes[0]!);
    const sum = new Float64Array(P);
    for (let i = 0; i < P; i++) sum[i] = mine.grads[i]! * sizes[0]!;
    let samples = sizes[0]!;
    let accepted = 1;
    while (accepted < n - o.backups) {
      const { worker, message } = await withSpan(dist, "wait for gradients", () => Promise.race(posted.values()));
      posted.delete(worker);
      waiting.add(worker);
      if (message[0] !== step) {
        dropped += 1;
        continue;
      }
      for (let i = 0; i < P; i++) sum[i]! += message[3 + i]!;
      samples += message[1]!;
      accepted += 1;
    }
    for (let i = 0; i < P; i++) params[i]! -= (o.lr * sum[i]!) / samples;
    assignFlat(model.params, params);
    for (const w of [...waiting]) await sendParameters(w, step + 1, false);
    waiting.clear();
    stepMs.push(nowMs() - start);
    losses.push(mine.loss);
  }
  // Ranks still computing a late gradient: take it (dropped), then everyone stops.
  for (const [, pending] of posted) {
    await pending;
    dropped += 1;
  }
  for (let w = 1; w < n; w++) await sendParameters(w, o.steps, true);
  return dropped;
}
