// distlab's own code never reads a tensor synchronously. On a GPU rank (TF.js
// webgpu in Node) dataSync()/arraySync() of a GPU tensor cannot work, so every
// technique, model, data and cell-value path must read with `await t.data()`.
// The stand-in backend here is TF.js's cpu backend under another name whose
// readSync throws when called from outside a kernel (kernels of the cpu
// backend read their inputs through readSync; user-level reads come with no
// kernel running), as webgpu's does for a tensor on the GPU.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { createTcpKernelWorld, joinCommWorld, type JoinedWorld } from "../../kernel/src/cluster/comm-world";
import { readTensorsForDisplay } from "../../kernel/src/cluster/rank-side/cell-value-read";
import { toCellValue } from "../../kernel/src/cluster/rank-side/cell-value";
import { datasetBatch, teacherClassification, tokenBatch, seededRandom } from "../../kernel/src/data";
import { createLinearChain, createMlp, createTinyGpt } from "../../kernel/src/models";
import { decodeState, encodeState } from "../../kernel/src/checkpoint/checkpoint-state";
import {
  DataParallel, DistributedDataParallel, GradientAccumulation, Lamb, PowerSgdCompression, QsgdCompression, TopKCompression,
  PipelineParallel, TensorParallelGpt, flatParameters, gossipSgd, largeBatchTraining, localGradients, localSgd, parameterServer, scalarValue, stagedBackward,
  stragglerTraining, Zero, type Collectives, type PeerCollectives,
} from "../../kernel/src/techniques";

const STAND_IN = "no-sync-read";

/** Thrown by the stand-in, as webgpu in Node throws for a GPU-resident tensor. */
class SyncReadError extends Error {}

class NoSyncReadBackend extends MathBackendCPU {
  override readSync(dataId: object): tf.backend_util.BackendValues {
    const kernelDepth = (tf.engine().state as unknown as { kernelDepth: number }).kernelDepth;
    if (kernelDepth === 0) throw new SyncReadError("synchronous read of a tensor outside a kernel (dataSync/arraySync/bufferSync)");
    return super.readSync(dataId);
  }
  // The cpu backend's async read calls readSync; the stand-in's async read must not throw.
  override async read(dataId: object): Promise<tf.backend_util.BackendValues> {
    return super.readSync(dataId);
  }
}

let registered = false;
function useStandIn(): void {
  if (!registered) {
    tf.registerBackend(STAND_IN, () => new NoSyncReadBackend(), -1);
    for (const kernel of tf.getKernelsForBackend("cpu")) tf.registerKernel({ ...kernel, backendName: STAND_IN });
    registered = true;
  }
  tf.setBackend(STAND_IN);
}

const single: Collectives = { rank: 0, size: 1, allReduce: async (x) => x, allGather: async (x) => x };
const cls = teacherClassification({ n: 64, inputs: 6, outputs: 3, seed: 1 });
const batchOf = (rank: number, step: number, size: number) =>
  datasetBatch(cls, Array.from({ length: size }, (_, i) => (rank * 7 + step * size + i) % cls.n));
const mlp = (seed = 2) => createMlp({ sizes: [6, 8, 3], seed });

test("the stand-in backend fails a synchronous read, so the checks below can fail", () => {
  useStandIn();
  const t = tf.tidy(() => tf.add(tf.tensor([1, 2]), 1));
  assert.throws(() => t.dataSync(), SyncReadError);
  assert.throws(() => t.arraySync(), SyncReadError);
  t.dispose();
});

test("gradients, data parallel, DDP, accumulation, compression and LAMB train without a synchronous read", async () => {
  useStandIn();
  const model = mlp();
  const batch = batchOf(0, 0, 16);
  const { loss, grads } = await localGradients(model, batch);
  assert.ok(Number.isFinite(loss) && grads.length === model.params.length);
  const before = await flatParameters(model);
  for (const gradientSync of [undefined, new TopKCompression({ ratio: 0.5 }), new QsgdCompression(), new PowerSgdCompression({ rank: 1 })]) {
    await new DataParallel(model, single, { lr: 0.1, gradientSync }).step(batch);
  }
  await new GradientAccumulation(new DataParallel(model, single, { lr: 0.1 }), { microBatches: 2 }).step([batchOf(0, 1, 8), batchOf(0, 2, 8)]);
  await new DistributedDataParallel(model, single, { lr: 0.1 }).step(batch);
  await new Lamb(model.params).step(grads, 0.01);
  const after = await flatParameters(model);
  assert.ok(after.some((v, i) => v !== before[i]), "the parameters moved");
  const gpt = createTinyGpt({ vocabSize: 7, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 1, seed: 3 });
  const tokens = tokenBatch(Int32Array.from({ length: 50 }, (_, i) => i % 7), 2, 4, seededRandom(2));
  const stagedLoss = await stagedBackward(gpt, tokens, () => {});
  assert.ok(Math.abs(stagedLoss - (await localGradients(gpt, tokens)).loss) < 1e-5);
  assert.ok(Number.isFinite(await scalarValue(tf.tidy(() => gpt.loss(tokens)))));
});

test("ZeRO stages 0-3 train the tiny GPT without a synchronous read", async () => {
  useStandIn();
  const solo = { ...single, reduceScatter: async (x: Float32Array) => x };
  const tokens = tokenBatch(Int32Array.from({ length: 50 }, (_, i) => i % 7), 2, 4, seededRandom(2));
  for (const stage of [0, 1, 2, 3] as const) {
    const zero = await Zero.create(createTinyGpt({ vocabSize: 7, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 1, seed: 3 }), solo, { stage });
    const before = await zero.gatherParameters();
    assert.ok(Number.isFinite((await zero.step(tokens)).loss));
    const after = await zero.gatherParameters();
    assert.ok(after.some((v, i) => v !== before[i]), `stage ${stage}: the parameters moved`);
  }
});

test("a cell's tensor result is read without a synchronous read", async () => {
  useStandIn();
  const t = tf.tidy(() => tf.mul(tf.tensor([[1, 2], [3, 4]]), 2));
  const shown = toCellValue(await readTensorsForDisplay(t));
  assert.deepEqual(shown.json, [[2, 4], [6, 8]]);
  assert.match(shown.text!, /^Tensor\(float32, \[2, 2\]\) \[ \[ 2, 4 \], \[ 6, 8 \] \]/);
  assert.deepEqual(toCellValue(await readTensorsForDisplay({ t, loss: 1 })).json, { t: [[2, 4], [6, 8]], loss: 1 });
  assert.deepEqual(toCellValue(await readTensorsForDisplay([t])).json, [[[2, 4], [6, 8]]]);
  t.dispose();
});

async function twoRanks(): Promise<JoinedWorld[]> {
  const world = await createTcpKernelWorld(2);
  try {
    return await Promise.all([0, 1].map((rank) => joinCommWorld(world.address, { rank, size: 2, timeoutMs: 20_000 })));
  } finally {
    world.formed();
  }
}

test("local SGD, gossip, large batch, parameter server and stragglers run on 2 ranks without a synchronous read", async () => {
  useStandIn();
  const ranks = await twoRanks();
  try {
    const evaluate = (model: ReturnType<typeof mlp>) => () => scalarValue(tf.tidy(() => model.loss(batchOf(0, 99, 16))));
    const each = <T>(run: (dist: PeerCollectives, rank: number) => Promise<T>) =>
      Promise.all(ranks.map((w) => run(w.comm as unknown as PeerCollectives, w.comm.rank)));
    const batches = (rank: number) => (step: number, size: number) => batchOf(rank, Math.max(step, 0), size);
    for (const report of await each((dist, rank) => { const m = mlp(); return localSgd(dist, m, batches(rank), { steps: 4, innerSteps: 2, batchSize: 8, innerLr: 0.1, evaluate: evaluate(m) }); })) {
      assert.equal(report.syncs, 2);
      assert.ok(report.curve.every((p) => Number.isFinite(p.loss)));
    }
    await each((dist, rank) => { const m = mlp(rank); return gossipSgd(dist, m, batches(rank), { steps: 3, batchSize: 8, lr: 0.1, evaluate: evaluate(m) }); });
    await each((dist, rank) => { const m = mlp(); return largeBatchTraining(dist, m, batches(rank), { steps: 3, batchSize: 8, baseLr: 0.05, baseBatch: 8, optimizer: "lamb", evaluate: evaluate(m) }); });
    await each((dist, rank) => { const m = mlp(); return parameterServer(dist, m, batches(rank), { staleness: 1, steps: 3, batchSize: 8, lr: 0.05, evaluate: evaluate(m) }); });
    await each((dist, rank) => stragglerTraining(dist, mlp(), batches(rank), { policy: "equal", steps: 3, globalBatch: 16, lr: 0.05, calibrationSteps: 2 }));
  } finally {
    for (const w of ranks) w.close();
    tf.setBackend("cpu");
  }
});

test("tensor and pipeline parallelism run on 2 ranks without a synchronous read", async () => {
  useStandIn();
  const ranks = await twoRanks();
  try {
    const gptOptions = { vocabSize: 7, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 1, seed: 3 };
    const tokens = Int32Array.from({ length: 50 }, (_, i) => i % 7);
    const losses = await Promise.all(ranks.map(async (w) => {
      const gpt = createTinyGpt(gptOptions);
      const tp = new TensorParallelGpt(gpt, w.comm as never);
      const batch = tokenBatch(tokens, 2, 4, seededRandom(2));
      const loss = await tp.step(batch, 0.1);
      const shards = await tp.shardOf(gpt.params.map((p) => new Float32Array(p.size)));
      tp.dispose();
      return { loss, shards: shards.length };
    }));
    for (const { loss, shards } of losses) assert.ok(Number.isFinite(loss) && shards > 0);
    const pipeLosses = await Promise.all(ranks.map(async (w) => {
      const chain = createLinearChain({ width: 4, layers: 2, seed: 1 });
      const x = tf.tensor2d(Array.from({ length: 16 }, (_, i) => (i % 5) / 5), [4, 4]);
      const batch = { x, y: tf.tidy(() => tf.mul(x, 2)) };
      for (const schedule of ["gpipe", "1f1b", "zb-h1"] as const) {
        const result = await new PipelineParallel(chain, w.comm, { schedule, microBatches: 2 }).step(batch);
        if (w.comm.rank === 1) assert.ok(Number.isFinite(result.loss), `${schedule}: loss ${result.loss}`);
      }
      tf.dispose([batch.x, batch.y]);
      return true;
    }));
    assert.deepEqual(pipeLosses, [true, true]);
  } finally {
    for (const w of ranks) w.close();
    tf.setBackend("cpu");
  }
});

test("a checkpoint's tensors are stored without a synchronous read", async () => {
  useStandIn();
  try {
    const t = tf.tidy(() => tf.mul(tf.tensor([[1, 2], [3, 4]]), 3));
    const body = await encodeState({ step: 2, nested: { weights: [t] } });
    t.dispose();
    const restored = decodeState(body, tf) as { step: number; nested: { weights: tf.Tensor[] } };
    assert.equal(restored.step, 2);
    assert.deepEqual(Array.from(await restored.nested.weights[0]!.data()), [3, 6, 9, 12]);
    restored.nested.weights[0]!.dispose();
  } finally {
    tf.setBackend("cpu");
  }
});
