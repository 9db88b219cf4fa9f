// The body of a rank's communication thread (comm-thread.ts): joins the
// group's comm-thread world (comm-thread-world.ts: shm for thread ranks, tcp
// for process ranks) as the rank's comm thread and runs the jobs the rank
// thread posts, one after another, each timed on this thread's clock.
// A job blocks or occupies this thread (the shm transport waits with
// Atomics.wait, the tcp one on this thread's event loop), never the rank's.
import { parentPort, workerData } from "node:worker_threads";
import type { CommThreadControl, CommThreadInit, CommThreadJob, CommThreadReply } from "./comm-thread";
import { joinCommThreadWorld } from "./comm-thread-world";
import { nowMicros } from "./transport";
import type { CommSpan, Communicator } from "./types";

if (!parentPort) throw new Error("comm-worker.ts runs as a rank's communication thread (a worker thread), not on its own");
const port = parentPort;
const init = workerData as CommThreadInit;
const calls: CommSpan[] = [];
/** Aborted by the rank thread's cancel (the group's world was cancelled): ends a tcp join or wait. */
const cancelled = new AbortController();
let comm!: Communicator;
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

/** Joins the world, then says so: the rank thread may wait for this before timing anything (CommThread.ready()). */
async function join(): Promise<void> {
  try {
    comm = await joinCommThreadWorld(init.world, init.rank, {
      timeoutMs: init.timeoutMs,
      ...(init.link ? { link: init.link } : {}),
      onSpan: (span) => calls.push(span),
    }, cancelled.signal);
    port.postMessage({ ready: true });
  } catch (e) {
    const error = e as Error;
    port.postMessage({ joinError: { name: error?.name ?? "Error", message: `rank ${init.rank}'s communication thread: ${error?.message ?? String(e)}` } });
    throw error;
  }
}

// One job at a time, in the order posted: the same order on every rank, as collectives need.
let queue: Promise<void> = join();
port.on("message", (message: CommThreadJob | CommThreadControl) => {
  if ("cancel" in message) cancelled.abort(message.cancel);
  else if ("resetStats" in message) queue = queue.then(() => comm.resetStats());
  else queue = queue.then(() => runJob(message));
});
// A failed join answers every job with its error (the jobs were rejected with it on the rank thread already).
queue.catch(() => undefined);
