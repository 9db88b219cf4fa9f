/**
 * Decentralized SGD on a ring: D-PSGD (Lian et al., NeurIPS 2017).
 *
 * No allReduce and no server. After each local SGD step a rank averages its
 * parameters with its ring neighbours only:
 *   x_i <- sum_j W_ij x_j,  W_ij = 1/3 for j in {i-1, i, i+1}   (n >= 3)
 * W is symmetric and doubly stochastic, so the ranks' mean follows SGD on the
 * mean gradient while the consensus distance (1/n) sum_i ||x_i - mean||^2
 * contracts. Each rank sends its P parameters to 2 neighbours per step,
 * whatever n is: per-rank traffic constant in n (2 * P * 4 bytes expected;
 * measure what moved with dist.stats()). (With n = 2 the two neighbours are
 * the same rank: one message, W = [[1/2, 1/2], [1/2, 1/2]].)
 */
import { withSpan } from "./span";
import type { Model, BatchFn, PeerCollectives } from "./types";
import { checkInteger, checkKnownKeys, checkRange } from "./validate";
import { assignFlat, flatStepGradients, flattenTensors, squaredNorm } from "./flat-vectors";
import type { LossPoint } from "./loss-curve";
import { nowMs } from "./timing";

export interface GossipOptions {
  /** local SGD steps, each followed by one neighbour average */
  steps: number;
  /** samples per rank per step */
  batchSize: number;
  lr: number;
  /** every this many steps: consensus distance and evaluate() of the ranks' mean (measurement traffic, not counted) */
  measureEvery: number;
  /** loss of the parameters currently in the model; called on every rank with the ranks' mean loaded; may be async (`await t.data()`: a GPU rank cannot read a tensor synchronously) */
  evaluate?: () => number | Promise<number>;
}

export const GOSSIP_DEFAULTS: Pick<GossipOptions, "measureEvery" | "evaluate"> = { measureEvery: 1, evaluate: undefined };

export interface GossipReport {
  /** evaluate() of the ranks' mean parameters at each measurement */
  curve: LossPoint[];
  /** (step, consensus distance) at each measurement, starting before the first step */
  consensus: { step: number; distance: number }[];
  /** ranks of this communicator that this rank exchanges with: [left, right] (one for n = 2, none alone) */
  neighbours: number[];
  ms: number;
}

type Given = Partial<GossipOptions> & Pick<GossipOptions, "steps" | "batchSize" | "lr">;

export function validateGossipOptions(options: Given): GossipOptions {
  checkKnownKeys("gossip", options, { ...GOSSIP_DEFAULTS, steps: 0, batchSize: 0, lr: 0 });
  const o = { ...GOSSIP_DEFAULTS, ...options };
  checkInteger("gossip.steps", o.steps, 1);
  checkInteger("gossip.batchSize", o.batchSize, 1);
  checkRange("gossip.lr", o.lr, 0, Infinity, { low: true, high: true });
  checkInteger("gossip.measureEvery", o.measureEvery, 1);
  return o;
}

/** The distinct ring neighbours of `rank`: [left, right] for n >= 3, the other rank for n = 2, none alone. */
export function ringNeighbours(rank: number, size: number): number[] {
  checkInteger("ringNeighbours.size", size, 1);
  checkInteger("ringNeighbours.rank", rank, 0, size - 1);
  if (size === 1) return [];
  if (size === 2) return [1 - rank];
  return [(rank - 1 + size) % size, (rank + 1) % size];
}

/** W [size][size]: W_ij = 1 / (1 + degree) for j a neighbour of i or i itself, else 0. */
export function ringMixingMatrix(size: number): number[][] {
  return Array.from({ length: size }, (_, i) => {
    const row = new Array<number>(size).fill(0);
    const members = [i, ...ringNeighbours(i, size)];
    for (const j of members) row[j] = 1 / members.length;
    return row;
  });
}

/** One gossip round: x averaged with the neighbours' x (equal weights). Returns a fresh [P] array. */
export async function gossipAverage(dist: PeerCollectives, x: Float32Array): Promise<{ mixed: Float32Array }> {
  const neighbours = ringNeighbours(dist.rank, dist.size);
  // Sends and receives are all posted before any is awaited: no ordering deadlock around the ring.
  const sends = neighbours.map((peer) => dist.send(x, peer));
  const received = await Promise.all(neighbours.map((peer) => dist.recv(new Float32Array(x.length), peer)));
  await Promise.all(sends);
  const mixed = Float32Array.from(x);
  for (const other of received) for (let i = 0; i < mixed.length; i++) mixed[i]! += other[i]!;
  const weight = 1 / (1 + neighbours.length);
  for (let i = 0; i < mixed.length; i++) mixed[i]! *= weight;
  return { mixed };
}

/** (1/n) sum_i ||x_i - mean||^2 over the ranks, and the mean itself (an allReduce: a measurement, not gossip). */
export async function consensusDistance(dist: PeerCollectives, x: Float32Array): Promise<{ distance: number; mean: Float32Array }> {
  const mean = await dist.allReduce(Float32Array.from(x), { op: "mean" });
  const diff = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) diff[i] = x[i]! - mean[i]!;
  const total = await dist.allReduce(Float64Array.of(squaredNorm(diff)), { op: "mean" });
  return { distance: total[0]!, mean };
}

/** D-PSGD: `steps` rounds of (local SGD step, neighbour average). Ranks may start from different parameters. */
export async function gossipSgd<B>(dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>, options: Given): Promise<GossipReport> {
  const o = validateGossipOptions(options);
  let x = await flattenTensors(model.params);
  const curve: LossPoint[] = [];
  const consensus: { step: number; distance: number }[] = [];
  const start = nowMs();
  const measure = async (step: number): Promise<void> => {
    const { distance, mean } = await consensusDistance(dist, x);
    consensus.push({ step, distance });
    if (!o.evaluate) return;
    assignFlat(model.params, mean);
    curve.push({ step, samples: step * o.batchSize * dist.size, loss: await o.evaluate(), ms: nowMs() - start });
    assignFlat(model.params, x);
  };
  await measure(0);
  for (let step = 1; step <= o.steps; step++) {
    const { grads } = await withSpan(dist, "local step", () => flatStepGradients(model, batches, step - 1, o.batchSize));
    for (let i = 0; i < x.length; i++) x[i]! -= o.lr * grads[i]!;
    x = (await withSpan(dist, "gossip", () => gossipAverage(dist, x))).mixed;
    assignFlat(model.params, x);
    if (step % o.measureEvery === 0 || step === o.steps) await measure(step);
  }
  return { curve, consensus, neighbours: ringNeighbours(dist.rank, dist.size), ms: nowMs() - start };
}
