// One rank of a composition test world (techniques-compose.test.ts): the tiny
// GPT under compose() on a mesh of the world's real shared-memory
// communicator, beside the whole model on this rank as the reference; returns
// the differences and the ops the transport counted.
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { attachShmCommunicator } from "../../kernel/src/comm";
import { createTinyGpt } from "../../kernel/src/models";
import { seededRandom } from "../../kernel/src/data";
import { compose, localGradients, maxAbsDifference, type ComposeOptions, type MeshDegrees } from "../../kernel/src/techniques";

const { init, rank, options } = workerData;
const comm = attachShmCommunicator(init, rank, options);
const VOCAB = 13;

export interface ComposeArg { mesh: MeshDegrees; options: Partial<ComposeOptions>; batch: number; seq: number; nEmbd: number; nHead: number; nLayer: number; steps: number }

async function composeRun(arg: ComposeArg) {
  const gpt = createTinyGpt({ vocabSize: VOCAB, blockSize: arg.seq, nEmbd: arg.nEmbd, nHead: arg.nHead, nLayer: arg.nLayer, seed: 5 });
  const reference = createTinyGpt({ vocabSize: VOCAB, blockSize: arg.seq, nEmbd: arg.nEmbd, nHead: arg.nHead, nLayer: arg.nLayer, seed: 5 });
  const random = seededRandom(11);
  const batches = Array.from({ length: arg.steps }, () => {
    const tokens = Array.from({ length: arg.batch * (arg.seq + 1) }, () => Math.floor(random() * VOCAB));
    const rows = (shift: number) => Array.from({ length: arg.batch }, (_, b) => tokens.slice(b * (arg.seq + 1) + shift, b * (arg.seq + 1) + shift + arg.seq));
    return { x: tf.tensor2d(rows(0), [arg.batch, arg.seq], "int32"), y: tf.tensor2d(rows(1), [arg.batch, arg.seq], "int32") };
  });
  const lr = arg.options.lr ?? 0.05;
  const plan = compose(gpt, comm, arg.mesh, arg.options);
  let gradDifference = 0;
  let gradScale = 0;
  const losses: [number, number][] = [];
  await comm.barrier();
  comm.resetStats();
  for (const batch of batches) {
    // Reference: the whole global batch on one rank, plain SGD.
    const ref = await localGradients(reference, batch);
    const { loss, grads } = await plan.gradients(batch);
    const expected = await plan.shardOf(ref.grads);
    assertSameKeys(grads, expected);
    for (const [i, g] of grads) {
      gradDifference = Math.max(gradDifference, maxAbsDifference(expected.get(i)!, g));
      gradScale = Math.max(gradScale, ...expected.get(i)!.map(Math.abs));
    }
    losses.push([ref.loss, loss]);
    // Apply the same update both sides, then compare the next step.
    for (const [i, g] of grads) {
      const p = plan.localParam(i);
      tf.tidy(() => p.assign(tf.sub(p, tf.mul(tf.tensor(g, p.shape), lr))));
    }
    reference.params.forEach((p, i) => tf.tidy(() => p.assign(tf.sub(p, tf.mul(tf.tensor(ref.grads[i]!, p.shape), lr)))));
  }
  await comm.barrier();
  const ops: Record<string, number> = {};
  for (const [op, t] of Object.entries(comm.stats().byOp)) if (op !== "barrier" && t.calls > 0) ops[op] = t.calls;
  const result = { peakStaged: plan.peakStagedMicroBatches, coords: plan.coords, groups: { dp: plan.mesh.axis("dp").name, pp: plan.mesh.axis("pp").name, tp: plan.mesh.axis("tp").name }, gradDifference, gradScale, losses, ops };
  plan.dispose();
  tf.dispose(batches.flatMap((b) => [b.x, b.y]));
  return result;
}

function assertSameKeys(a: Map<number, Float32Array>, b: Map<number, Float32Array>): void {
  const ka = [...a.keys()].sort((x, y) => x - y).join(",");
  const kb = [...b.keys()].sort((x, y) => x - y).join(",");
  if (ka !== kb) throw new Error(`compose: gradients for parameters [${ka}], reference for [${kb}]`);
}

parentPort!.on("message", async (m: { id: number; name: string; arg: ComposeArg }) => {
  try {
    if (m.name !== "compose") throw new Error(`unknown scenario ${m.name}`);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value: await composeRun(m.arg) });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: `${err.message}\n${err.stack}` } });
  }
});
