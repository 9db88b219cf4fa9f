/**
 * The kernel's handle on one thread rank: a piscina pool of exactly one
 * thread (so the rank's state stays on that thread), the kernel's end of the
 * rank's port, and what the kernel knows about it (busy, alive, backend).
 *
 * When the thread dies (terminated on interrupt, `process.exit()`, out of
 * heap) piscina starts a fresh one for the next task; `needsInit` tells the
 * group to initialise it again, and the rank's declarations are gone.
 */
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { extname, join } from "node:path";
import Piscina from "piscina";
import type { TfBackendName } from "../magics/distributed-spec";
import type { InitResult, KernelCommand, RankEvent, RankTask, RankTaskResult } from "./protocol";

/** Heap cap per rank thread (MiB): a runaway rank fails with an error instead of taking the kernel down. */
export const RANK_HEAP_LIMIT_MB = 2048;

// Same extension as this file: .js from kernel/dist, .ts when run from source under tsx.
const FROM_SOURCE = extname(__filename) === ".ts";
const WORKER_FILE = join(__dirname, `rank-worker${extname(__filename)}`);

/**
 * Flags for rank threads: the kernel's own, minus inspector ports that would
 * clash. From source, `--import tsx` does not reach worker threads on Node
 * 20, so ranks load TypeScript through tsx's require hook (piscina
 * require()s the handler first).
 */
function rankExecArgv(): string[] {
  const flags = process.execArgv.filter((flag) => !flag.startsWith("--inspect"));
  return FROM_SOURCE ? [...flags, "--require", "tsx/cjs"] : flags;
}

export interface RankInfo {
  rank: number;
  size: number;
  host: string;
  tfBackend?: TfBackendName;
}

export class ThreadRank {
  private readonly pool: Piscina<RankTask, RankTaskResult>;
  private port?: MessagePort;
  /** Set when the thread has to be initialised before its next task. */
  needsInit = true;
  busy = false;
  tfBackend = "unknown";
  device = "unknown";
  private nextRequest = 1;
  /** Cell ids whose end marker arrived, and waiters for markers still to come. */
  private lastEndedCell = 0;
  private readonly endWaiters = new Map<number, () => void>();
  private readonly statusWaiters = new Map<number, (event: Extract<RankEvent, { kind: "status" }>) => void>();

  constructor(
    readonly info: RankInfo,
    private readonly onEvent: (rank: number, event: RankEvent) => void,
  ) {
    this.pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      resourceLimits: { maxOldGenerationSizeMb: RANK_HEAP_LIMIT_MB },
      execArgv: rankExecArgv(),
      // No Atomics.wait between tasks: an idle rank must keep its event loop
      // turning (status queries, timers, late output).
      atomics: "disabled",
    });
    // A dead thread must not become an unhandled 'error' event of the kernel.
    this.pool.on("error", () => undefined);
  }

  /** Starts (or restarts) the rank's state on its thread: console capture, TensorFlow.js, scope. */
  async init(): Promise<void> {
    this.port?.close();
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.port.on("message", (event: RankEvent) => this.receive(event));
    this.port.unref();
    const result = (await this.run({
      kind: "init",
      rank: this.info.rank,
      size: this.info.size,
      localRank: this.info.rank,
      host: this.info.host,
      ...(this.info.tfBackend !== undefined ? { tfBackend: this.info.tfBackend } : {}),
      port: channel.port2,
    }, undefined, [channel.port2])) as InitResult;
    this.tfBackend = result.tfBackend;
    this.device = result.device;
    this.needsInit = false;
  }

  /**
   * Runs one task. `signal` aborting terminates the thread (piscina's
   * cancellation); use `command({kind: "cancel"})` first to ask politely.
   */
  async run(task: RankTask, signal?: AbortSignal, transfer?: MessagePort[]): Promise<RankTaskResult> {
    this.busy = true;
    try {
      return await this.pool.run(task, { ...(signal ? { signal } : {}), ...(transfer ? { transferList: transfer } : {}) });
    } catch (error) {
      // The thread is gone (terminated, exited, out of heap); piscina starts a new one.
      this.needsInit = true;
      throw error;
    } finally {
      this.busy = false;
    }
  }

  command(command: KernelCommand): void {
    this.port?.postMessage(command);
  }

  /** Asks the rank for its heap and backend; undefined if it does not answer within `waitMs` (busy in a loop). */
  status(waitMs: number): Promise<Extract<RankEvent, { kind: "status" }> | undefined> {
    if (!this.port || this.needsInit) return Promise.resolve(undefined);
    const requestId = this.nextRequest++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.statusWaiters.delete(requestId);
        resolve(undefined);
      }, waitMs);
      this.statusWaiters.set(requestId, (event) => {
        clearTimeout(timer);
        resolve(event);
      });
      this.command({ kind: "status", requestId });
    });
  }

  async close(): Promise<void> {
    this.port?.close();
    this.port = undefined;
    await this.pool.destroy();
  }

  /** Resolves once the rank's output of `cellId` has all arrived, or after `waitMs`. */
  cellEnded(cellId: number, waitMs: number): Promise<void> {
    if (this.lastEndedCell >= cellId) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.endWaiters.delete(cellId);
        resolve();
      }, waitMs);
      this.endWaiters.set(cellId, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private receive(event: RankEvent): void {
    if (event.kind === "cell-end") {
      this.lastEndedCell = Math.max(this.lastEndedCell, event.cellId);
      this.endWaiters.get(event.cellId)?.();
      this.endWaiters.delete(event.cellId);
      return;
    }
    if (event.kind === "status") {
      const waiter = this.statusWaiters.get(event.requestId);
      this.statusWaiters.delete(event.requestId);
      waiter?.(event);
      return;
    }
    this.onEvent(this.info.rank, event);
  }
}
