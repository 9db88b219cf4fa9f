// The body of a rank's communication thread (comm-thread.ts): joins the
// group's comm-thread world as the rank's comm thread and runs the jobs the
// rank thread posts, one after another, each timed on this thread's clock.
// A job blocks this thread (the transport waits with Atomics.wait), never the
// rank's.
import { parentPort, workerData } from "node:worker_threads";
import type { CommThreadInit, CommThreadJob, CommThreadReply } from "./comm-thread";
import { attachShmCommunicator } from "./shm-world";
import { nowMicros } from "./transport";
import type { CommSpan } from "./types";

if (!parentPort) throw new Error("comm-worker.ts runs as a rank's communication thread (a worker thread), not on its own");
const port = parentPort;
const init = workerData as CommThreadInit;
const calls: CommSpan[] = [];
const comm = attachShmCommunicator(init.world, init.rank, {
  timeoutMs: init.timeoutMs,
  ...(init.link ? { link: init.link } : {}),
  onSpan: (span) => calls.push(span),
});
/**
 * Over an emulated link (channel algorithms), two ranks exchange their whole
 * buffers once (recursive doubling) rather than run the ring's two half-buffer
 * steps: the same bytes each way, but one message and one hand-off between the
 * two comm threads instead of two, each of which waits for a core while the
 * rank threads compute. Otherwise the communicator chooses.
 */
const algorithm = init.link && init.world.size === 2 ? ("recursive-doubling" as const) : undefined;

async function runJob(job: CommThreadJob): Promise<void> {
  calls.length = 0;
  const start = nowMicros();
  try {
    const data = await comm.allReduce(job.data, { op: job.reduceOp, out: job.data, ...(algorithm ? { algorithm } : {}) });
    const end = nowMicros();
    const reply: CommThreadReply = { id: job.id, ok: true, name: job.name, data, start, end, calls: calls.splice(0), stats: comm.stats() };
    port.postMessage(reply, [data.buffer as ArrayBuffer]);
  } catch (e) {
    const error = e as Error;
    const reply: CommThreadReply = {
      id: job.id,
      ok: false,
      error: { name: error?.name ?? "Error", message: `rank ${init.rank}'s communication thread, ${job.name}: ${error?.message ?? String(e)}`, ...(error?.stack ? { stack: error.stack } : {}) },
    };
    port.postMessage(reply);
  }
}

// The rank thread may wait for this before timing anything (CommThread.ready()).
port.postMessage({ ready: true });

// One job at a time, in the order posted: the same order on every rank, as collectives need.
let queue: Promise<void> = Promise.resolve();
port.on("message", (message: CommThreadJob | { resetStats: true }) => {
  if ("resetStats" in message) queue = queue.then(() => comm.resetStats());
  else queue = queue.then(() => runJob(message));
});
