// One rank of the collectives benchmark (bench/collectives.mjs): a worker
// thread attached to a shm world, or a child process joining a tcp world
// (over Unix sockets as `--backend processes` does, or forced onto TCP
// loopback as gloo's ranks talk). It times collectives on request with the
// plan the driver sends (the same plan gloo gets): `warmup` untimed calls,
// then `reps` blocks of `calls` calls, each block after a barrier.
import { parentPort, workerData } from "node:worker_threads";
import { attachShmCommunicator, connectTcpWorld, type CommArray, type Communicator } from "../kernel/src/comm";
import { createDist, type Dist } from "../kernel/src/cluster/rank-side/dist-api";
import { loadTf } from "../kernel/src/cluster/rank-side/tf-setup";

/**
 * call, how the arrays are passed:
 *   default     plain Float32Arrays, no `out`: the call returns a fresh result array
 *   in-place    plain Float32Arrays with `out` (allReduce/broadcast write into their input, as gloo's do)
 *   registered  arrays from comm.alloc (a shm world's registered memory) with `out`
 *   tensor      `dist.allReduce(t)` on a float32 tf.Tensor (a cell's `dist`, TF.js with the backend
 *               a rank picks: wasm here), the result tensor disposed after each call as a loop must
 */
export type CallStyle = "default" | "in-place" | "registered" | "tensor";
export type Request = { id: number; op: string; bytes: number; style: CallStyle; warmup: number; calls: number; reps: number; algorithm?: string };
export type Reply = { id: number; ms?: number[]; error?: string };
type Setup = { transport: "shm" | "processes" | "tcp"; init?: unknown; rank: number; size: number; rendezvous?: string };

const post = (m: object) => (parentPort ? parentPort.postMessage(m) : process.send!(m));
const onMessage = (f: (m: Request) => void) => (parentPort ? parentPort.on("message", f) : process.on("message", f as never));

/** The rank's `dist` over `comm`, with TF.js loaded as a rank loads it: made on the first tensor request. */
let rankDist: Promise<{ dist: Dist; tf: typeof import("@tensorflow/tfjs") }> | undefined;
const distOf = (comm: Communicator) =>
  (rankDist ??= loadTf(undefined).then(({ tf, device }) => ({ tf, dist: createDist({ rank: comm.rank, size: comm.size, localRank: comm.rank, host: "bench", device }, comm, tf) })));

/** `dist.allReduce(tensor)`: the plan of timeRequest, the input a float32 tensor of the size. */
async function timeTensorRequest(comm: Communicator, m: Request): Promise<number[]> {
  if (m.op !== "allReduce") throw new Error(`the tensor call is timed for allReduce only, not ${m.op}`);
  const { dist: d, tf } = await distOf(comm);
  const input = tf.fill([Math.max(1, Math.floor(m.bytes / 4))], comm.rank + 1, "float32");
  const algorithm = m.algorithm ? { algorithm: m.algorithm as never } : {};
  const run = async () => (await d.allReduce(input, algorithm)).dispose();
  for (let i = 0; i < m.warmup; i++) await run();
  const ms: number[] = [];
  for (let r = 0; r < m.reps; r++) {
    await comm.barrier();
    const t0 = performance.now();
    for (let i = 0; i < m.calls; i++) await run();
    ms.push((performance.now() - t0) / m.calls);
  }
  input.dispose();
  return ms;
}

async function timeRequest(comm: Communicator, m: Request): Promise<number[]> {
  if (m.style === "tensor") return timeTensorRequest(comm, m);
  const { rank, size } = comm;
  const n = Math.max(1, Math.floor(m.bytes / 4)); // float32 elements
  const array = (length: number) => (m.style === "registered" ? comm.alloc(Float32Array, length) : new Float32Array(length));
  // nccl-tests sizes: allGather's size is the gathered output, reduceScatter's the full input
  const input = array(m.op === "allGather" ? Math.max(1, Math.floor(n / size)) : n).fill(rank + 1);
  const gathered = array(input.length * size);
  const block = array(Math.floor(((rank + 1) * n) / size) - Math.floor((rank * n) / size));
  const algorithm = m.algorithm ? { algorithm: m.algorithm as never } : {};
  const withOut = (out: CommArray) => (m.style === "default" ? algorithm : { ...algorithm, out });
  const run = (): Promise<unknown> => {
    switch (m.op) {
      case "allReduce": return comm.allReduce(input, withOut(input));
      case "allGather": return comm.allGather(input, withOut(gathered));
      case "reduceScatter": return comm.reduceScatter(input, withOut(block));
      case "broadcast": return comm.broadcast(input, 0, withOut(input));
      default: throw new Error(`unknown op ${m.op}`);
    }
  };
  for (let i = 0; i < m.warmup; i++) await run();
  const ms: number[] = [];
  for (let r = 0; r < m.reps; r++) {
    await comm.barrier();
    const t0 = performance.now();
    for (let i = 0; i < m.calls; i++) await run();
    ms.push((performance.now() - t0) / m.calls);
  }
  if (m.style === "registered") for (const a of [input, gathered, block]) comm.free(a);
  return ms;
}

/** A process rank's first IPC message is its world's id and secret (never argv). */
function credentialsFromParent(): Promise<{ world: string; secret: Buffer }> {
  return new Promise((resolve) => process.once("message", (m: { world: string; secret: string }) => resolve({ world: m.world, secret: Buffer.from(m.secret, "hex") })));
}

async function main(setup: Setup): Promise<void> {
  const { transport, init, rank, size, rendezvous } = setup;
  const comm: Communicator =
    transport === "shm"
      ? attachShmCommunicator(init as never, rank)
      : await connectTcpWorld({ rank, size, rendezvous: rendezvous!, credentials: await credentialsFromParent(), ...(transport === "tcp" ? { unixSockets: false } : {}) });
  onMessage((m: Request) => {
    timeRequest(comm, m).then(
      (ms) => post({ id: m.id, ms } satisfies Reply),
      (e: Error) => post({ id: m.id, error: String(e.stack) } satisfies Reply),
    );
  });
  post({ ready: true });
}

void main(parentPort ? (workerData as Setup) : (JSON.parse(process.argv[2]!) as Setup));
