// One rank of a ZeRO test world (techniques-zero.test.ts): trains the tiny GPT
// with ZeRO stage 0 (plain data parallelism, the control), 1, 2 and 3 on its
// real shared-memory communicator, each rank on its own batches, and returns
// per stage the losses, the final parameters, the bytes held (the technique's
// walk over its buffers and the backend's own count) and what the transport
// sent per step.
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { attachShmCommunicator } from "../../kernel/src/comm";
import { createTinyGpt } from "../../kernel/src/models";
import { seededRandom } from "../../kernel/src/data";
import { Zero, type ZeroStage } from "../../kernel/src/techniques";

const { init, rank, options } = workerData;
const comm = attachShmCommunicator(init, rank, options);

export interface ZeroArg { stage: ZeroStage; steps: number; nEmbd: number; nLayer: number; seq: number; batch: number }
export interface ZeroReply {
  describe: string; psi: number; padded: number; units: number[];
  losses: number[]; parameters: number[];
  held: { parameters: number; gradients: number; optimizer: number; total: number };
  /** tf.memory().numBytes after Zero.create less before the model was built */
  backendDelta: number;
  peakGatheredBytes: number; gatheredAfter: number;
  /** per step: bytes the transport sent, by op */
  wire: Record<string, number>[];
}
const VOCAB = 13;

async function zeroRun(arg: ZeroArg): Promise<ZeroReply> {
  const before = tf.memory().numBytes;
  const gpt = createTinyGpt({ vocabSize: VOCAB, blockSize: arg.seq, nEmbd: arg.nEmbd, nHead: 2, nLayer: arg.nLayer, seed: 5 });
  const zero = await Zero.create(gpt, comm as never, { stage: arg.stage, lr: 0.01 });
  const backendDelta = tf.memory().numBytes - before;
  const losses: number[] = [];
  const wire: Record<string, number>[] = [];
  for (let step = 0; step < arg.steps; step++) {
    const random = seededRandom(1000 * rank + step);   // this rank's own data
    const tokens = Array.from({ length: arg.batch * (arg.seq + 1) }, () => Math.floor(random() * VOCAB));
    const rows = (shift: number) => Array.from({ length: arg.batch }, (_, b) => tokens.slice(b * (arg.seq + 1) + shift, b * (arg.seq + 1) + shift + arg.seq));
    const batch = { x: tf.tensor2d(rows(0), [arg.batch, arg.seq], "int32"), y: tf.tensor2d(rows(1), [arg.batch, arg.seq], "int32") };
    await comm.barrier();
    comm.resetStats();
    losses.push((await zero.step(batch)).loss);
    await comm.barrier();
    const sent: Record<string, number> = {};
    for (const [op, t] of Object.entries(comm.stats().byOp)) if (op !== "barrier" && t.calls > 0) sent[op] = t.bytesSent;
    wire.push(sent);
    tf.dispose([batch.x, batch.y]);
  }
  const held = zero.heldBytes();
  const parameters = Array.from(await zero.gatherParameters());
  const reply: ZeroReply = {
    describe: zero.describe(), psi: zero.plan.size, padded: zero.plan.padded, units: zero.plan.units.map((u) => u.padded),
    losses, parameters, held, backendDelta, peakGatheredBytes: zero.peakGatheredBytes, gatheredAfter: zero.gatheredBytes(), wire,
  };
  zero.dispose();
  if (arg.stage !== 3) tf.dispose(gpt.params);
  return reply;
}

parentPort!.on("message", async (m: { id: number; name: string; arg: ZeroArg }) => {
  try {
    if (m.name !== "zero") throw new Error(`unknown scenario ${m.name}`);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value: await zeroRun(m.arg) });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: `${err.message}\n${err.stack}` } });
  }
});
