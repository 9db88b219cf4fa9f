/**
 * A parameter server with a staleness bound (SSP, Ho et al. 2013).
 *
 * Rank 0 serves: it holds the parameters, applies each pushed gradient as it
 * arrives (w <- w - lr * g) and answers a worker with fresh parameters only
 * while the worker is at most `staleness` steps ahead of the slowest
 * (StalenessClock). Ranks 1..n-1 pull, compute a gradient on their batch,
 * push. Everything travels through point-to-point send/recv:
 *   worker -> server: [last, clock, versionRead, loss, ...gradient]   (4 + P float32)
 *   server -> worker: [version, ...parameters]                        (1 + P float32)
 * At the end rank 0 broadcasts the final parameters, so every rank ends with them.
 */
import { StalenessClock, validateStaleness } from "./parameter-server-clock";
import { withSpan } from "./span";
import type { Model, BatchFn, PeerCollectives } from "./types";
import { checkInteger, checkKnownKeys, checkRange } from "./validate";
import { assignFlat, flatStepGradients, flattenTensors } from "./flat-vectors";
import type { LossPoint } from "./loss-curve";
import { nowMs, sleep } from "./timing";

export interface ParameterServerOptions {
  /** s: how many steps a worker may run ahead of the slowest; 0 = synchronous, Infinity = asynchronous */
  staleness: number;
  /** gradients each worker pushes */
  steps: number;
  /** samples per worker step */
  batchSize: number;
  /** the server's SGD learning rate, per applied gradient */
  lr: number;
  /** loss of the server's current parameters (e.g. on a held-out batch); rank 0 calls it every `evalEvery` updates; may be async (`await t.data()`: a GPU rank cannot read a tensor synchronously) */
  evaluate?: () => number | Promise<number>;
  evalEvery: number;
  /** a worker rank made slow for demonstrations (-1: none); it sleeps `slowMs` milliseconds per step */
  slowRank: number;
  slowMs: number;
}

export const PARAMETER_SERVER_DEFAULTS: Omit<ParameterServerOptions, "staleness" | "steps" | "batchSize" | "lr"> = {
  evaluate: undefined,
  evalEvery: 1,
  slowRank: -1,
  slowMs: 0,
};

export interface ParameterServerReport {
  role: "server" | "worker";
  /** server: evaluate() after updates; worker: its own batch losses */
  curve: LossPoint[];
  /** largest clock difference at which a worker was allowed to start a step (server only) */
  maxStaleness: number;
  /** stalenessHistogram[k]: steps started k steps ahead of the slowest worker (server only) */
  stalenessHistogram: number[];
  /** largest number of updates applied between a worker's pull and its push (server only) */
  maxVersionLag: number;
  /** gradients applied (server) or pushed (worker) */
  updates: number;
  /** wall time of the run, milliseconds */
  ms: number;
}

type Given = Partial<ParameterServerOptions> & Pick<ParameterServerOptions, "staleness" | "steps" | "batchSize" | "lr">;

export function validateParameterServerOptions(options: Given, size: number): ParameterServerOptions {
  checkKnownKeys("parameterServer", options, { ...PARAMETER_SERVER_DEFAULTS, staleness: 0, steps: 0, batchSize: 0, lr: 0 });
  const o = { ...PARAMETER_SERVER_DEFAULTS, ...options };
  if (size < 2) throw new RangeError(`parameterServer needs at least 2 ranks (rank 0 serves), got ${size}`);
  validateStaleness("parameterServer.staleness", o.staleness);
  checkInteger("parameterServer.steps", o.steps, 1);
  checkInteger("parameterServer.batchSize", o.batchSize, 1);
  checkRange("parameterServer.lr", o.lr, 0, Infinity, { low: true, high: true });
  checkInteger("parameterServer.evalEvery", o.evalEvery, 1);
  if (o.slowRank !== -1) checkInteger("parameterServer.slowRank", o.slowRank, 1, size - 1);
  checkRange("parameterServer.slowMs", o.slowMs, 0, Infinity, { high: true });
  return o;
}

export async function parameterServer<B>(dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>, options: Given): Promise<ParameterServerReport> {
  const o = validateParameterServerOptions(options, dist.size);
  // Every rank starts from rank 0's parameters (collectives return fresh arrays).
  const flat = await dist.broadcast(await flattenTensors(model.params), 0);
  const report = dist.rank === 0 ? await serve(dist, model, flat, o) : await work(dist, model, batches, flat.length, o);
  assignFlat(model.params, await dist.broadcast(flat, 0));
  return report;
}

async function serve<B>(dist: PeerCollectives, model: Model<B>, flat: Float32Array, o: ParameterServerOptions): Promise<ParameterServerReport> {
  const workers = dist.size - 1;
  const P = flat.length;
  const clock = new StalenessClock(workers, o.staleness);
  const curve: LossPoint[] = [];
  const start = nowMs();
  let version = 0;
  let maxVersionLag = 0;
  const evaluate = async (): Promise<void> => {
    if (!o.evaluate) return;
    assignFlat(model.params, flat);
    curve.push({ step: version, samples: version * o.batchSize, loss: await o.evaluate(), ms: nowMs() - start });
  };
  const releaseAllowed = async (): Promise<void> => {
    for (const { worker } of clock.release()) {
      const message = new Float32Array(1 + P);
      message[0] = version;
      message.set(flat, 1);
      await dist.send(message, worker + 1);
    }
  };
  // One receive posted per worker at a time; whichever push arrives first is applied first.
  const posted = new Map<number, Promise<{ worker: number; message: Float32Array }>>();
  const post = (worker: number): void => {
    posted.set(worker, dist.recv(new Float32Array(4 + P), worker + 1).then((message) => ({ worker, message })));
  };
  await evaluate();
  await releaseAllowed();
  for (let w = 0; w < workers; w++) post(w);
  while (posted.size > 0) {
    const { worker, message } = await Promise.race(posted.values());
    posted.delete(worker);
    const last = message[0] === 1;
    maxVersionLag = Math.max(maxVersionLag, version - message[2]!);
    withSpan(dist, "ps apply", () => {
      for (let i = 0; i < P; i++) flat[i]! -= o.lr * message[4 + i]!;
    });
    version += 1;
    clock.push(worker, last);
    if (!last) post(worker);
    if (version % o.evalEvery === 0) await evaluate();
    await releaseAllowed();
  }
  if (version % o.evalEvery !== 0) await evaluate();
  return {
    role: "server", curve, maxStaleness: clock.maxObserved, stalenessHistogram: Array.from(clock.histogram, (c) => c ?? 0),
    maxVersionLag, updates: version, ms: nowMs() - start,
  };
}

async function work<B>(dist: PeerCollectives, model: Model<B>, batches: BatchFn<B>, P: number, o: ParameterServerOptions): Promise<ParameterServerReport> {
  const curve: LossPoint[] = [];
  const start = nowMs();
  const incoming = new Float32Array(1 + P);
  const outgoing = new Float32Array(4 + P);
  for (let step = 0; step < o.steps; step++) {
    await withSpan(dist, "ps pull", () => dist.recv(incoming, 0));
    const versionRead = incoming[0]!;
    assignFlat(model.params, incoming.subarray(1));
    const { loss, grads } = await withSpan(dist, "ps gradient", () => flatStepGradients(model, batches, step, o.batchSize));
    if (dist.rank === o.slowRank) await withSpan(dist, "slowed", () => sleep(o.slowMs));
    outgoing[0] = step === o.steps - 1 ? 1 : 0;
    outgoing[1] = step;
    outgoing[2] = versionRead;
    outgoing[3] = loss;
    outgoing.set(grads, 4);
    await withSpan(dist, "ps push", () => dist.send(outgoing, 0));
    curve.push({ step, samples: (step + 1) * o.batchSize, loss, ms: nowMs() - start });
  }
  return { role: "worker", curve, maxStaleness: 0, stalenessHistogram: [], maxVersionLag: 0, updates: o.steps, ms: nowMs() - start };
}
