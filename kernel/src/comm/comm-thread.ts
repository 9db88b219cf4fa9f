// A rank's communication thread: a worker thread of the rank that runs
// collectives the rank hands it while the rank's own thread goes on
// computing, as NCCL's kernels run on a communication stream (and its proxy
// thread drives the network) while the compute stream runs the next layers.
//
// Why a thread: on a thread rank a collective blocks its thread (the shm
// transport waits with Atomics.wait), and on any rank TensorFlow.js computes
// synchronously on the rank's thread, so nothing the rank thread starts can
// move while it differentiates a layer (a process rank's tcp sends and
// receives progress only when its event loop turns). The communication
// thread joins a world of its own (one per group, created by the kernel
// beside the ranks' world: shm for thread ranks, tcp with its own rendezvous
// for process ranks; comm-thread-world.ts), as rank `rank`, with the same
// transport classes, algorithms and emulated link; its collectives never
// share channels, sockets, call numbers or doorbells with the rank thread's.
//
// Jobs run one at a time in the order given (a stream): every rank must hand
// its comm thread the same jobs in the same order, like collectives. Data
// travels by transfer (no copy): the array's buffer moves to the comm thread
// and comes back with the result.
import { Worker } from "node:worker_threads";
import { extname, join } from "node:path";
import type { ShmWorldInit } from "./shm-layout";
import { createShmWorld } from "./shm-world";
import { isCommThreadWorld, type CommThreadWorld } from "./comm-thread-world";
import type { CommSpan, LinkModel, ReduceOp } from "./types";
import type { WireStats } from "./wire-stats";
import { workerExecArgv } from "../v8-start-flags";

/** What the rank thread sends: one collective for the comm thread to run. */
export interface CommThreadJob {
  id: number;
  op: "allReduce";
  reduceOp: ReduceOp;
  /** the job's name on the timeline, e.g. "bucket 2 allReduce" */
  name: string;
  /** whole buffer (byteOffset 0), transferred */
  data: Float32Array;
}

/** What the comm thread answers, once per job. */
export type CommThreadReply =
  | {
      id: number;
      ok: true;
      /** the job's name, as given */
      name: string;
      data: Float32Array;
      /** the job's start and end on the comm thread, epoch microseconds (nowMicros) */
      start: number;
      end: number;
      /** the communicator's own record of each call the job made (onSpan) */
      calls: CommSpan[];
      /** what the comm thread's transport moved so far */
      stats: WireStats;
    }
  | { id: number; ok: false; error: { name: string; message: string; stack?: string } };

/** A finished job as the timeline needs it: real times on the comm thread. */
export interface CommThreadSpan {
  name: string;
  /** epoch microseconds */
  start: number;
  end: number;
  calls: CommSpan[];
}

/** What the rank thread may send besides jobs: zero the counts, or cancel (the group's world was cancelled). */
export type CommThreadControl = { resetStats: true } | { cancel: string };

/** What the comm thread is started with (workerData). */
export interface CommThreadInit {
  world: CommThreadWorld;
  rank: number;
  timeoutMs: number;
  link?: LinkModel;
}

export interface CommThreadOptions extends CommThreadInit {
  /** Hears of every finished job, on the rank thread, when its reply arrives (times are the comm thread's). */
  onSpan?: (span: CommThreadSpan) => void;
}

/** A job's result on the rank thread. */
export interface CommThreadResult {
  data: Float32Array;
  /** epoch microseconds on the comm thread */
  start: number;
  end: number;
}

/**
 * The world the comm threads of a group of `size` thread ranks join: created
 * where the ranks' world is (the kernel's thread), structured-cloneable. It
 * runs collectives only, so its point-to-point rings are the smallest allowed
 * and it has no registered memory. Its waits poll for 50 us, not the ranks'
 * 1 ms: a comm thread waits for a peer's bucket while its own rank's thread
 * computes backward, and the cores it would poll on are the ones computing.
 */
export function createCommThreadWorld(size: number): ShmWorldInit {
  return createShmWorld(size, { userRingBytes: 4096, registeredBytes: 0, spinMs: 0.05 });
}

// Same extension as this file: .js from kernel/dist, .ts when run from source under tsx.
const FROM_SOURCE = extname(__filename) === ".ts";
const WORKER_FILE = join(__dirname, `comm-worker${extname(__filename)}`);

/**
 * The comm thread's Worker. From source, Node will not start a .ts main
 * module (unknown extension, even with tsx's require hook), so a one-line
 * CommonJS script installs tsx's hook and requires it.
 */
function startWorker(init: CommThreadInit): Worker {
  const execArgv = workerExecArgv();
  if (!FROM_SOURCE) return new Worker(WORKER_FILE, { workerData: init, execArgv });
  return new Worker(`require("tsx/cjs"); require(${JSON.stringify(WORKER_FILE)});`, { eval: true, workerData: init, execArgv });
}

interface Pending {
  resolve(result: CommThreadResult): void;
  reject(error: unknown): void;
}

export class CommThread {
  readonly rank: number;
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  private stats?: WireStats;
  private readyPromise?: Promise<void>;
  /** why the comm thread could not join its world; every job after that rejects with it */
  private joinFailure?: Error;

  constructor(private readonly options: CommThreadOptions) {
    if (!isCommThreadWorld(options.world)) {
      throw new TypeError("CommThread: world must be the group's comm-thread world (createCommThreadWorld's shm world, or a tcp world with its rendezvous)");
    }
    if (!Number.isInteger(options.rank) || options.rank < 0 || options.rank >= options.world.size) {
      throw new RangeError(`CommThread: rank must be an integer in [0, ${options.world.size - 1}], got ${options.rank}`);
    }
    this.rank = options.rank;
  }

  /** Ranks in the comm thread's world (the group's size). */
  get size(): number {
    return this.options.world.size;
  }

  /** Jobs handed over and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * allReduce(op) of x over the ranks' comm threads. x's memory is handed to
   * the comm thread (x is empty afterwards; a view of part of a buffer, or of
   * shared memory, is copied first); the result comes back in it.
   */
  allReduce(x: Float32Array, options: { op?: ReduceOp; name?: string } = {}): Promise<Float32Array> {
    return this.run(x, options).then((r) => r.data);
  }

  /** allReduce with the job's start and end times on the comm thread. */
  run(x: Float32Array, options: { op?: ReduceOp; name?: string } = {}): Promise<CommThreadResult> {
    if (!(x instanceof Float32Array)) throw new TypeError(`CommThread.allReduce: x must be a Float32Array, got ${describe(x)}`);
    if (this.closed) return Promise.reject(new Error(`rank ${this.rank}: the communication thread is closed`));
    if (this.joinFailure) return Promise.reject(this.joinFailure);
    const whole = x.byteOffset === 0 && x.byteLength === x.buffer.byteLength && !(x.buffer instanceof SharedArrayBuffer);
    const data = whole ? x : x.slice();
    const job: CommThreadJob = { id: this.nextId++, op: "allReduce", reduceOp: options.op ?? "sum", name: options.name ?? "allReduce", data };
    const worker = this.start();
    return new Promise<CommThreadResult>((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      worker.ref(); // a job in flight keeps the rank's event loop alive until its reply
      worker.postMessage(job, [data.buffer as ArrayBuffer]);
    });
  }

  /**
   * Starts the comm thread now (it starts with the first job otherwise) and
   * resolves once it has joined its world: starting takes tens of
   * milliseconds (hundreds from source), which a timed first step would pay.
   */
  ready(): Promise<void> {
    this.start();
    return this.readyPromise!;
  }

  /** What the comm thread's transport moved, as of its last reply (undefined until one). */
  wireStats(): WireStats | undefined {
    return this.stats;
  }

  /** Zeroes the comm thread's counts (after the jobs already handed over). */
  resetWireStats(): void {
    this.stats = undefined;
    this.post({ resetStats: true });
  }

  /**
   * Ends the comm thread's waits, now and later, with a CommCancelledError (tcp worlds: each rank
   * cancels its own; a shm world is cancelled through its shared cancel word instead).
   */
  cancel(reason: string): void {
    this.post({ cancel: reason });
  }

  private post(control: CommThreadControl): void {
    this.worker?.postMessage(control);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const init: CommThreadInit = {
      world: this.options.world,
      rank: this.options.rank,
      timeoutMs: this.options.timeoutMs,
      ...(this.options.link ? { link: this.options.link } : {}),
    };
    const worker = startWorker(init);
    // An idle comm thread must not keep the rank alive (it is ref'd while jobs are in flight).
    worker.unref();
    this.readyPromise = new Promise<void>((resolve, reject) => {
      worker.on("message", (reply: CommThreadReply | { ready: true } | { joinError: { name: string; message: string } }) => {
        if ("ready" in reply) resolve();
        else if ("joinError" in reply) {
          const error = new Error(reply.joinError.message);
          error.name = reply.joinError.name;
          this.joinFailure = error;
          reject(error);
          this.failAll(error);
        } else this.onReply(reply);
      });
      worker.on("error", (error) => {
        reject(error);
        this.failAll(error);
      });
    });
    this.readyPromise.catch(() => undefined); // also reported through the jobs
    worker.on("exit", (code) => {
      this.worker = undefined;
      if (this.pending.size > 0) this.failAll(new Error(`rank ${this.rank}: the communication thread exited (code ${code}) with ${this.pending.size} jobs in flight`));
    });
    this.worker = worker;
    return worker;
  }

  private onReply(reply: CommThreadReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    // `=== false`, not `!reply.ok`: cells type-check this file without strictNullChecks, where only an equality narrows the union.
    if (reply.ok === false) {
      const error = new Error(reply.error.message);
      error.name = reply.error.name;
      if (reply.error.stack) error.stack = reply.error.stack;
      pending.reject(error);
      return;
    }
    this.stats = reply.stats;
    this.options.onSpan?.({ name: reply.name, start: reply.start, end: reply.end, calls: reply.calls });
    pending.resolve({ data: reply.data, start: reply.start, end: reply.end });
  }

  private failAll(error: unknown): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  /** Stops the comm thread; jobs in flight reject. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error(`rank ${this.rank}: the communication thread was closed with jobs in flight`));
    if (worker) await worker.terminate();
  }
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "object";
  return typeof x;
}
