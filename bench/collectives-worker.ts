// One rank of the collectives benchmark (bench/collectives.mjs): attaches to
// a shm world or joins a tcp world, then times collectives on request.
import { parentPort, workerData } from "node:worker_threads";
import { attachShmCommunicator, connectTcpWorld, type Communicator } from "../kernel/src/comm";

type Request = { id: number; op: string; bytes: number; iters: number; algorithm?: string };

async function main(): Promise<void> {
  const { transport, init, rank, size, rendezvous } = workerData;
  const comm: Communicator =
    transport === "shm" ? attachShmCommunicator(init, rank) : await connectTcpWorld({ rank, size, rendezvous });
  parentPort!.on("message", async (m: Request) => {
    try {
      const n = Math.max(1, Math.floor(m.bytes / 4));
      // nccl-tests sizes: allGather's size is the gathered output, reduceScatter's the full input
      const input = new Float32Array(m.op === "allGather" ? Math.max(1, Math.floor(n / size)) : n).fill(rank + 1);
      const opts = m.algorithm ? { algorithm: m.algorithm as never } : {};
      const run = () => {
        switch (m.op) {
          case "allReduce": return comm.allReduce(input, opts);
          case "allGather": return comm.allGather(input);
          case "reduceScatter": return comm.reduceScatter(input);
          case "broadcast": return comm.broadcast(input, 0, opts);
          default: throw new Error(m.op);
        }
      };
      for (let i = 0; i < Math.min(3, m.iters); i++) await run();
      await comm.barrier();
      const t0 = performance.now();
      for (let i = 0; i < m.iters; i++) await run();
      const ms = (performance.now() - t0) / m.iters;
      parentPort!.postMessage({ id: m.id, ms });
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: String((e as Error).stack) });
    }
  });
  parentPort!.postMessage({ ready: true });
}
void main();
