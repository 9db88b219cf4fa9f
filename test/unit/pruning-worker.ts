// One rank of a ThreadWorld (comm-harness.ts) for the pruning tests: the tiny GPT pruned to a
// sparsity, this rank's gradients synced by PrunedGradientSync over the real shared-memory
// communicator, with the transport's own byte counters read around the sync.
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { attachShmCommunicator } from "../../kernel/src/comm";
import { seededRandom, tokenBatch } from "../../kernel/src/data";
import { createTinyGpt } from "../../kernel/src/models";
import { AllReduceMean, MagnitudePruning, PrunedGradientSync, countZeros, localGradients } from "../../kernel/src/techniques";

const { init, rank, options } = workerData;
const comm = attachShmCommunicator(init, rank, options);
const tokens = Int32Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 20);

async function prunedSync(sparsity: number) {
  const gpt = createTinyGpt({ vocabSize: 20, blockSize: 8, nEmbd: 16, nHead: 2, nLayer: 2, seed: 1 });
  const pruning = new MagnitudePruning(gpt.params, { targetSparsity: sparsity, startStep: 0, pruningSteps: 0 });
  await pruning.update(0);
  const batch = tokenBatch(tokens, 4, 8, seededRandom(10 + comm.rank)); // each rank its own data
  const { grads } = await localGradients(gpt, batch);
  const dense = await new AllReduceMean().sync(grads.map((g) => g.slice()), comm);
  await comm.barrier();
  comm.resetStats();
  const synced = await new PrunedGradientSync(pruning).sync(grads, comm);
  await comm.barrier();
  const wire = comm.stats();
  let maxDifference = 0, aliveWhereMasked = 0;
  synced.forEach((g, p) => g.forEach((v, i) => {
    const want = pruning.masks[p]![i] === 1 ? dense[p]![i]! : 0;
    maxDifference = Math.max(maxDifference, Math.abs(v - want));
    if (pruning.masks[p]![i] === 0 && v !== 0) aliveWhereMasked++;
  }));
  const measured = await countZeros(gpt.params, pruning.prunable);
  tf.dispose([batch.x, batch.y, ...gpt.params]);
  return { bytesSent: wire.bytesSent, allReduceBytes: wire.byOp.allReduce?.bytesSent ?? 0, alive: pruning.aliveCount(), zeros: measured.zeros, prunableTotal: measured.total, maxDifference, aliveWhereMasked };
}

parentPort!.on("message", async (m: { id: number; name: string; arg: unknown }) => {
  try {
    if (m.name !== "prunedSync") throw new Error(`unknown pruning scenario ${m.name}`);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value: await prunedSync(m.arg as number) });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: `${err.message}\n${err.stack}` } });
  }
});
