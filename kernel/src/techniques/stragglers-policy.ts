/**
 * The arithmetic of the three straggler policies, kept apart from the
 * training loop so it can be checked exactly. Rank i needs c_i milliseconds
 * per sample (measured); a step over a global batch B then takes:
 *   equal batches (B/n each):          max_i (B/n) c_i               (the slowest rank sets the pace)
 *   batches proportional to 1/c_i:      B / sum_i (1/c_i)             (the total throughput; LB-BSP)
 *   equal batches, b backup workers:    (n-b)-th smallest (B/n) c_i   (Chen et al. 2016)
 */
import { splitEvenly } from "../cluster/split";
import { checkInteger } from "./validate";

export type StragglerPolicy = "equal" | "proportional" | "backup";

/** B split as evenly as integers allow, as `%dist scatter` and `dist.shard` split: the first (B mod n) ranks get one more. */
export function equalBatches(globalBatch: number, size: number): number[] {
  return splitEvenly(globalBatch, size).map((block) => block.end - block.start);
}

/**
 * B split in proportion to each rank's throughput (samples per ms), every
 * rank at least 1 sample. Rounding: start from the floors of the exact shares,
 * then give each remaining sample to the rank that would finish it soonest
 * ((b_i + 1) / throughput_i smallest), which keeps max_i b_i / throughput_i,
 * the step time, as low as integers allow.
 */
export function proportionalBatches(throughputs: readonly number[], globalBatch: number): number[] {
  const n = throughputs.length;
  checkInteger("proportionalBatches.globalBatch", globalBatch, n);
  throughputs.forEach((t, i) => {
    if (!(t > 0) || !Number.isFinite(t)) throw new RangeError(`proportionalBatches.throughputs[${i}] must be a positive number, got ${t}`);
  });
  const total = throughputs.reduce((a, b) => a + b, 0);
  const batches = throughputs.map((t) => Math.max(1, Math.floor((globalBatch * t) / total)));
  const finish = (i: number, extra: number): number => (batches[i]! + extra) / throughputs[i]!;
  for (let sum = batches.reduce((a, b) => a + b, 0); sum > globalBatch; sum--) {
    // Only reachable when the 1-sample minimum pushed the sum over: take from the latest finisher that can spare one.
    let worst = -1;
    for (let i = 0; i < n; i++) if (batches[i]! > 1 && (worst < 0 || finish(i, 0) > finish(worst, 0))) worst = i;
    batches[worst]! -= 1;
  }
  for (let sum = batches.reduce((a, b) => a + b, 0); sum < globalBatch; sum++) {
    let best = 0;
    for (let i = 1; i < n; i++) if (finish(i, 1) < finish(best, 1)) best = i;
    batches[best]! += 1;
  }
  return batches;
}

/** The step time each policy predicts, in ms, from per-rank ms per sample (see the file comment). */
export function predictedStepMs(policy: StragglerPolicy, msPerSample: readonly number[], globalBatch: number, backups = 0): number {
  const n = msPerSample.length;
  if (policy === "proportional") return globalBatch / msPerSample.reduce((sum, c) => sum + 1 / c, 0);
  const times = equalBatches(globalBatch, n).map((b, i) => b * msPerSample[i]!);
  if (policy === "equal") return Math.max(...times);
  checkInteger("predictedStepMs.backups", backups, 0, n - 1);
  return times.sort((a, b) => a - b)[n - backups - 1]!;
}

/** The median of values (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
