// One rank of a tensor-parallel test world (tensor-parallel.test.ts): runs the
// tiny GPT cut over the world's ranks on its real shared-memory communicator,
// next to the whole model on this rank as the reference, and returns the
// differences and what the transport counted.
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { attachShmCommunicator, type Communicator } from "../../kernel/src/comm";
import { createTinyGpt } from "../../kernel/src/models";
import { seededRandom } from "../../kernel/src/data";
import { TensorParallelGpt, localGradients, maxAbsDifference, type TensorParallelOptions } from "../../kernel/src/techniques";

const { init, rank, options } = workerData;
const comm = attachShmCommunicator(init, rank, options);

export interface TensorParallelArg { options: Partial<TensorParallelOptions>; batch: number; seq: number; nEmbd: number; nHead: number; nLayer: number }
const VOCAB = 13;

/** What the transport moved per op during fn: calls and bytes sent (every rank past the call first). */
async function measured(fn: () => Promise<unknown>): Promise<Record<string, { calls: number; bytesSent: number }>> {
  await comm.barrier();
  comm.resetStats();
  await fn();
  await comm.barrier();
  const byOp = comm.stats().byOp;
  const out: Record<string, { calls: number; bytesSent: number }> = {};
  for (const [op, t] of Object.entries(byOp)) if (op !== "barrier" && t.calls > 0) out[op] = { calls: t.calls, bytesSent: t.bytesSent };
  return out;
}

async function tensorParallelRun(c: Communicator, arg: TensorParallelArg) {
  const gpt = createTinyGpt({ vocabSize: VOCAB, blockSize: arg.seq, nEmbd: arg.nEmbd, nHead: arg.nHead, nLayer: arg.nLayer, seed: 5 });
  const random = seededRandom(11);
  const tokens = Array.from({ length: arg.batch * (arg.seq + 1) }, () => Math.floor(random() * VOCAB));
  const rows = (shift: number) => Array.from({ length: arg.batch }, (_, b) => tokens.slice(b * (arg.seq + 1) + shift, b * (arg.seq + 1) + shift + arg.seq));
  const batch = { x: tf.tensor2d(rows(0), [arg.batch, arg.seq], "int32"), y: tf.tensor2d(rows(1), [arg.batch, arg.seq], "int32") };
  const reference = await localGradients(gpt, batch);
  const referenceLogits = tf.tidy(() => gpt.logits(batch.x).dataSync() as Float32Array);
  const tp = new TensorParallelGpt(gpt, c as never, arg.options);
  const before = tf.memory().numBytes;
  let forward: Awaited<ReturnType<TensorParallelGpt["forward"]>> | undefined;
  const forwardWire = await measured(async () => (forward = await tp.forward(batch)));
  const heldByBackend = tf.memory().numBytes - before;
  const bytesOf = (ts: tf.Tensor[]) => ts.reduce((n, t) => n + t.size * (t.dtype === "bool" ? 1 : 4), 0);
  const heldByTape = bytesOf(tp.allSavedForBackward());
  const perLayer = Array.from({ length: arg.nLayer }, (_, i) => bytesOf(tp.savedForBackward(i)));
  const [start, end] = forward!.positions;
  const vocab = VOCAB;
  const expectedLogits = Array.from({ length: arg.batch }, (_, b) => Array.from(referenceLogits.subarray((b * arg.seq + start) * vocab, (b * arg.seq + end) * vocab))).flat();
  let backward: Awaited<ReturnType<TensorParallelGpt["backward"]>> | undefined;
  const backwardWire = await measured(async () => (backward = await tp.backward()));
  const expectedGrads = await tp.shardOf(reference.grads);
  const gradDifference = Math.max(...expectedGrads.map((g, i) => maxAbsDifference(g, backward!.grads[i]!)));
  const gradScale = Math.max(...expectedGrads.map((g) => Math.max(...g.map(Math.abs))));
  const result = {
    logitDifference: maxAbsDifference(expectedLogits, forward!.logits),
    lossDifference: Math.abs(reference.loss - backward!.loss),
    gradDifference, gradScale,
    forwardWire, backwardWire, heldByBackend, heldByTape, perLayer,
  };
  tp.dispose();
  tf.dispose([batch.x, batch.y]);
  return result;
}

parentPort!.on("message", async (m: { id: number; name: string; arg: TensorParallelArg }) => {
  try {
    if (m.name !== "tensorParallel") throw new Error(`unknown scenario ${m.name}`);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value: await tensorParallelRun(comm, m.arg) });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: `${err.message}\n${err.stack}` } });
  }
});
