// One rank of the collectives benchmark (bench/collectives.mjs): a worker
// thread attached to a shm world, or a child process joining a tcp world;
// then it times collectives on request. Outputs are preallocated and
// allReduce/broadcast run in place ({out}), as gloo's do, so neither side
// pays for fresh memory inside the timed loop.
import { parentPort, workerData } from "node:worker_threads";
import { attachShmCommunicator, connectTcpWorld, type Communicator } from "../kernel/src/comm";

type Request = { id: number; op: string; bytes: number; iters: number; algorithm?: string };
/** registered: every array comes from comm.alloc (shm: the world's registered memory) */
type Setup = { transport: "shm" | "tcp"; init?: unknown; rank: number; size: number; rendezvous?: string; registered?: boolean };

const post = (m: object) => (parentPort ? parentPort.postMessage(m) : process.send!(m));
const onMessage = (f: (m: Request) => void) => (parentPort ? parentPort.on("message", f) : process.on("message", f as never));

async function main(setup: Setup): Promise<void> {
  const { transport, init, rank, size, rendezvous, registered } = setup;
  const comm: Communicator =
    transport === "shm"
      ? attachShmCommunicator(init as never, rank)
      : await connectTcpWorld({ rank, size, rendezvous: rendezvous!, unixSockets: false });
  onMessage(async (m: Request) => {
    try {
      const n = Math.max(1, Math.floor(m.bytes / 4));
      // nccl-tests sizes: allGather's size is the gathered output, reduceScatter's the full input
      const array = (length: number) => (registered ? comm.alloc(Float32Array, length) : new Float32Array(length));
      const input = array(m.op === "allGather" ? Math.max(1, Math.floor(n / size)) : n).fill(rank + 1);
      const gathered = array(input.length * size);
      const block = array(Math.floor(((rank + 1) * n) / size) - Math.floor((rank * n) / size));
      const algorithm = m.algorithm ? { algorithm: m.algorithm as never } : {};
      const run = () => {
        switch (m.op) {
          case "allReduce": return comm.allReduce(input, { ...algorithm, out: input });
          case "allGather": return comm.allGather(input, { ...algorithm, out: gathered });
          case "reduceScatter": return comm.reduceScatter(input, { ...algorithm, out: block });
          case "broadcast": return comm.broadcast(input, 0, { ...algorithm, out: input });
          default: throw new Error(m.op);
        }
      };
      // warm-up: enough calls for V8 to optimise the small-message path (a 4 KiB allReduce on 2 rank
      // threads averaged 25 us per call over calls 2,000-7,000 and 10 us from call 20,000 on)
      for (let i = 0; i < Math.min(20_000, 3 * m.iters); i++) await run();
      await comm.barrier();
      const t0 = performance.now();
      for (let i = 0; i < m.iters; i++) await run();
      const ms = (performance.now() - t0) / m.iters;
      if (registered) for (const a of [input, gathered, block]) comm.free(a);
      post({ id: m.id, ms });
    } catch (e) {
      post({ id: m.id, error: String((e as Error).stack) });
    }
  });
  post({ ready: true });
}

void main(parentPort ? (workerData as Setup) : (JSON.parse(process.argv[2]) as Setup));
