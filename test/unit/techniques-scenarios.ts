// What a rank of a techniques test world (techniques-worker.ts) can be asked to
// do: run one technique on its real communicator next to an independent
// reference or observer, and return plain numbers the test compares.
// Observers wrap `dist` on one rank and re-derive a property from the messages
// themselves (never from the technique's own report), so a technique that
// breaks the property fails the test even if its report says otherwise.
import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../../kernel/src/comm";
import { createMlp } from "../../kernel/src/models";
import { datasetBatch, seededRandom, teacherClassification, type TensorBatch } from "../../kernel/src/data";
import {
  DataParallel, Sgd, assignFlat, concatGradients, flattenTensors, gossipAverage, largeBatchTraining, localGradients, localGradientsOf, localSgd,
  parameterServer, stragglerTraining, type PeerCollectives, type StragglerPolicy,
} from "../../kernel/src/techniques";

type Scenario = (comm: Communicator, arg: any) => Promise<unknown>;

const data = teacherClassification({ n: 512, inputs: 8, outputs: 3, seed: 1 });
const SIZES = [8, 16, 3];
/** Rank `rank`'s batch number `step`: rows drawn from a (rank, step) seed, so any rank can rebuild another's. */
const batchOf = (rank: number, step: number, batchSize: number): TensorBatch => {
  const random = seededRandom(7919 * rank + 104_729 * (step + 1000) + 1);
  return datasetBatch(data, Array.from({ length: batchSize }, () => Math.floor(random() * data.n)));
};
const newModel = () => createMlp({ sizes: SIZES, seed: 3 });

/** The techniques' view of a communicator, delegating each call to it; `on*` hooks observe point-to-point traffic. */
function observed(comm: Communicator, hooks: { onSend?: (x: Float32Array, peer: number) => void; onRecv?: (x: Float32Array, peer: number) => void } = {}): PeerCollectives {
  return {
    rank: comm.rank,
    size: comm.size,
    allReduce: (x, options) => comm.allReduce(x, options),
    allGather: (x) => comm.allGather(x),
    broadcast: (x, root) => comm.broadcast(x, root),
    barrier: () => comm.barrier(),
    send: (x, peer) => { hooks.onSend?.(x as Float32Array, peer); return comm.send(x, peer); },
    recv: async (like, peer) => { const x = await comm.recv(like, peer); hooks.onRecv?.(x as Float32Array, peer); return x; },
  };
}

/** Every rank's vector, gathered: [size][P]. */
async function gatherAll(comm: Communicator, x: Float32Array): Promise<Float32Array[]> {
  const all = await comm.allGather(x);
  return Array.from({ length: comm.size }, (_, r) => all.slice(r * x.length, (r + 1) * x.length));
}

export const TECHNIQUE_SCENARIOS: Record<string, Scenario> = {
  /**
   * arg {rounds, members}: the first `members` ranks gossip `rounds` times from different random vectors.
   * Returns, before each round and after the last, the consensus distance (1/n) sum_i ||x_i - mean||^2
   * and the mean's largest drift from its start, both computed here in float64 from the gathered vectors.
   */
  async gossipRounds(comm, arg: { rounds: number; members: number }) {
    const group = comm.newGroup(Array.from({ length: arg.members }, (_, i) => i), `ring${arg.members}`);
    if (comm.rank >= arg.members) return null;
    const random = seededRandom(31 + comm.rank);
    let x: Float32Array = Float32Array.from({ length: 1000 }, () => random() * 2 - 1);
    const distances: number[] = [];
    let meanDrift = 0;
    let startMean: Float64Array | undefined;
    for (let round = 0; ; round++) {
      const all = await gatherAll(group, x);
      const mean = new Float64Array(x.length);
      for (const v of all) for (let i = 0; i < v.length; i++) mean[i]! += v[i]! / all.length;
      startMean ??= mean;
      for (let i = 0; i < mean.length; i++) meanDrift = Math.max(meanDrift, Math.abs(mean[i]! - startMean[i]!));
      let distance = 0;
      for (const v of all) for (let i = 0; i < v.length; i++) distance += (v[i]! - mean[i]!) ** 2 / all.length;
      distances.push(distance);
      if (round === arg.rounds) break;
      x = (await gossipAverage(group as unknown as PeerCollectives, x)).mixed;
    }
    return { distances, meanDrift };
  },

  /**
   * arg {staleness, steps, slowMs}: a parameter server on rank 0, rank size-1 slowed. Rank 0's observer
   * rebuilds each worker's clock from the pushes it receives ([last, clock, versionRead, loss, ...grad])
   * and, at each release (parameters sent to a worker), that worker's clock minus the slowest unfinished
   * worker's: the staleness of the step it is allowed to start. It also sums the pushed gradients, so
   * the server's final parameters can be checked against w0 - lr * sum(g).
   */
  async parameterServer(comm, arg: { staleness: number; steps: number; slowMs: number }) {
    const lr = 0.05;
    const model = newModel();
    const initial = await flattenTensors(model.params);
    const workers = comm.size - 1;
    const clocks = new Array<number>(workers).fill(0);
    const finished = new Array<boolean>(workers).fill(false);
    const releases: number[] = [];
    const gradientSum = new Float64Array(initial.length);
    const dist = comm.rank !== 0 ? observed(comm) : observed(comm, {
      onRecv: (x, peer) => {
        clocks[peer - 1] = x[1]! + 1;
        if (x[0] === 1) finished[peer - 1] = true;
        for (let i = 0; i < gradientSum.length; i++) gradientSum[i]! += x[4 + i]!;
      },
      onSend: (_, peer) => {
        const slowest = Math.min(...clocks.filter((_, w) => !finished[w]));
        releases.push(clocks[peer - 1]! - slowest);
      },
    });
    const report = await parameterServer(dist, model, (step, batchSize) => batchOf(comm.rank, step, batchSize), {
      staleness: arg.staleness, steps: arg.steps, batchSize: 16, lr, slowRank: comm.size - 1, slowMs: arg.slowMs,
    });
    const final = await flattenTensors(model.params);
    let fromPushes = NaN;
    if (comm.rank === 0) {
      fromPushes = 0;
      for (let i = 0; i < final.length; i++) fromPushes = Math.max(fromPushes, Math.abs(final[i]! - (initial[i]! - lr * gradientSum[i]!)));
    }
    const all = await gatherAll(comm, final);
    const acrossRanks = Math.max(...all.map((v) => Math.max(...v.map((value, i) => Math.abs(value - final[i]!)))));
    return { releases, reportMax: report.maxStaleness, updates: report.updates, fromPushes, acrossRanks };
  },

  /**
   * arg {innerSteps, outerLr, outerMomentum, steps}: localSgd, then a reference on a second model:
   * plain DataParallel (allReduce of the mean gradient, then SGD) when H = 1, lr 1, momentum 0;
   * otherwise H local steps, the mean of (global - local) by allReduce and Nesterov written out here.
   * Returns the largest |difference| of the final parameters and the allReduce calls localSgd made.
   */
  async localSgd(comm, arg: { innerSteps: number; outerLr: number; outerMomentum: number; steps: number }) {
    const innerLr = 0.1, batchSize = 8;
    const batches = (step: number, size: number) => batchOf(comm.rank, step, size);
    let allReduces = 0;
    const counting = observed(comm);
    const dist: PeerCollectives = { ...counting, allReduce: (x, o) => { allReduces += 1; return comm.allReduce(x, o); } };
    const model = newModel();
    await localSgd(dist, model, batches, { ...arg, batchSize, innerLr });
    const trained = await flattenTensors(model.params);

    const reference = newModel();
    if (arg.innerSteps === 1 && arg.outerLr === 1 && arg.outerMomentum === 0) {
      const dp = new DataParallel(reference, comm, { lr: innerLr });
      for (let step = 0; step < arg.steps; step++) {
        const batch = batches(step, batchSize);
        await dp.step(batch);
        tf.dispose([batch.x, batch.y]);
      }
    } else {
      const global = await flattenTensors(reference.params);
      const velocity = new Float64Array(global.length);
      for (let step = 0; step < arg.steps; step++) {
        const grads = concatGradients((await localGradientsOf(reference, () => batches(step, batchSize))).grads);
        const local = await flattenTensors(reference.params);
        for (let i = 0; i < local.length; i++) local[i]! -= innerLr * grads[i]!;
        assignFlat(reference.params, local);
        if ((step + 1) % arg.innerSteps !== 0) continue;
        const delta = await comm.allReduce(Float32Array.from(global, (g, i) => g - local[i]!), { op: "mean" });
        for (let i = 0; i < global.length; i++) {
          velocity[i] = arg.outerMomentum * velocity[i]! + delta[i]!;
          global[i]! -= arg.outerLr * (delta[i]! + arg.outerMomentum * velocity[i]!);
        }
        assignFlat(reference.params, global);
      }
    }
    const expected = await flattenTensors(reference.params);
    const difference = Math.max(...trained.map((v, i) => Math.abs(v - expected[i]!)));
    const untrained = await flattenTensors(newModel().params);
    const moved = Math.max(...trained.map((v, i) => Math.abs(v - untrained[i]!)));
    return { difference, moved, allReduces };
  },

  /**
   * arg {policy, backups, slowFactor}: straggler training with rank size-1 slowed. Rank 0's observer
   * tracks the step it has open (the newest step whose parameters it sent) and, for each gradient it
   * receives ([step, batch, loss, ...]), whether the gradient's step was still open when it arrived.
   * (After the last step the waiting workers get parameters for one more step, whose gradients are
   * drained and dropped: a step numbered `steps` is never open.)
   */
  async stragglers(comm, arg: { policy: StragglerPolicy; backups: number; slowFactor: number }) {
    const steps = 6;
    let openStep = 0;
    const arrivals: { peer: number; step: number; open: boolean }[] = [];
    const dist = comm.rank !== 0 ? observed(comm) : observed(comm, {
      onSend: (x) => { if (x[0] === 0) openStep = Math.max(openStep, x[1]!); },
      onRecv: (x, peer) => { arrivals.push({ peer, step: x[0]!, open: x[0] === openStep && openStep < steps }); },
    });
    const report = await stragglerTraining(dist, newModel(), (step, size) => batchOf(comm.rank, Math.max(step, 0), size), {
      policy: arg.policy, backups: arg.backups, steps, globalBatch: 32, lr: 0.05,
      slowRank: comm.size - 1, slowFactor: arg.slowFactor, deviceMsPerSample: 1, calibrationSteps: 3,
    });
    return { arrivals, dropped: report.dropped, msPerSample: report.msPerSample, measuredStepMs: report.measuredStepMs };
  },

  /**
   * arg {steps, warmupSteps}: large-batch SGD with linear scaling and warm-up; rank 0 replays it on one
   * model with the union of every rank's batch and the schedule lr(t) written out here.
   */
  async largeBatch(comm, arg: { steps: number; warmupSteps: number }) {
    const baseLr = 0.05, batchSize = 8, baseBatch = 8;
    const model = newModel();
    const report = await largeBatchTraining(observed(comm), model, (step, size) => batchOf(comm.rank, step, size), {
      steps: arg.steps, batchSize, baseLr, baseBatch, warmupSteps: arg.warmupSteps,
    });
    const k = (batchSize * comm.size) / baseBatch;
    const schedule = Array.from({ length: arg.steps }, (_, t) => (t < arg.warmupSteps ? baseLr * (1 + ((k - 1) * t) / arg.warmupSteps) : baseLr * k));
    let difference = NaN;
    if (comm.rank === 0) {
      const reference = newModel();
      const sgd = new Sgd(reference.params, baseLr);
      for (let step = 0; step < arg.steps; step++) {
        const parts = Array.from({ length: comm.size }, (_, r) => batchOf(r, step, batchSize));
        const union = { x: tf.concat(parts.map((p) => p.x)), y: tf.concat(parts.map((p) => p.y)) };
        sgd.step((await localGradients(reference, union)).grads, schedule[step]);
        tf.dispose([union.x, union.y, ...parts.flatMap((p) => [p.x, p.y])]);
      }
      const trained = await flattenTensors(model.params), expected = await flattenTensors(reference.params);
      difference = Math.max(...trained.map((v, i) => Math.abs(v - expected[i]!)));
    }
    return { lrs: report.lrs, schedule, difference };
  },
};
