/**
 * The kernel's handle on one thread rank: a piscina pool of exactly one
 * thread (so the rank's state stays on that thread), the kernel's end of the
 * rank's port, and what the kernel knows about it (busy, alive, backend).
 *
 * When the thread dies (terminated on interrupt, `process.exit()`, out of
 * heap) piscina starts a fresh one for the next task; `needsInit` tells the
 * group to initialise it again, and the rank's declarations are gone. A
 * thread that dies with no task running is noticed by its port closing.
 */
import { MessageChannel, type MessagePort } from "node:worker_threads";
import Piscina from "piscina";
import { toRemoteErrorData, type RemoteErrorData } from "../../../errors";
import type { InitResult, InitTask, KernelCommand, RankEvent, RankTask, RankTaskResult, TaskFailed } from "../../rank-messages";
import { RANK_HEAP_LIMIT_MB, rankEntryFile, threadExecArgv } from "../rank-entry-points";
import { RankTaskFailed, type RankInfo } from "../../kernel-side/rank-handle";
import { RankHandleBase } from "../../kernel-side/rank-handle-base";

const WORKER_FILE = rankEntryFile("thread-entry");

export class ThreadRank extends RankHandleBase {
  private readonly pool: Piscina<RankTask, RankTaskResult | TaskFailed>;
  private port?: MessagePort;
  /** The thread's V8 heap cap (MiB): the rank heap cap, or `--memory` where that is lower. */
  private readonly heapLimitMb: number;
  /** The last error piscina reported for a thread with no task (why it ended), if any. */
  private idleThreadError?: string;
  busy = false;

  constructor(info: RankInfo, onEvent: (rank: number, event: RankEvent) => void) {
    super(info, onEvent);
    this.heapLimitMb = Math.min(RANK_HEAP_LIMIT_MB, Math.floor((info.memoryCapBytes ?? Infinity) / 2 ** 20));
    this.pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      resourceLimits: { maxOldGenerationSizeMb: this.heapLimitMb },
      execArgv: threadExecArgv(),
      // No Atomics.wait between tasks: an idle rank must keep its event loop
      // turning (status queries, timers, late output).
      atomics: "disabled",
    });
    // A dead thread must not become an unhandled 'error' event of the kernel.
    this.pool.on("error", (error: unknown) => {
      this.idleThreadError = toRemoteErrorData(error).message;
    });
  }

  async init(): Promise<void> {
    const endedWhileIdle = this.endedWhileIdle !== undefined;
    try {
      await this.initOnce();
    } catch (error) {
      // A thread that ended between cells closes its port before piscina has let go of it, so an
      // init sent in that window can meet the ending thread ("worker exited"); piscina starts a
      // fresh thread for the next task, which the second try gets.
      if (!endedWhileIdle || !/worker exited/i.test(toRemoteErrorData(error).message)) throw error;
      await this.initOnce();
    }
  }

  private async initOnce(): Promise<void> {
    this.detachPort();
    const channel = new MessageChannel();
    const port = channel.port1;
    this.port = port;
    port.on("message", (event: RankEvent) => this.mailbox.receive(event));
    // The thread's end of the port closes with the thread: one that ends between tasks is told at the next cell.
    port.once("close", () => {
      // With a task running, the task's rejection tells of the end.
      if (this.port !== port || this.busy) return;
      this.port = undefined;
      this.needsInit = true;
      this.endedWhileIdle = `its thread ended${this.idleThreadError ? ` (${this.idleThreadError})` : ""}`;
    });
    port.unref();
    const task: InitTask = { ...this.initTaskFields(), port: channel.port2 };
    const result = (await this.runOnThread(task, undefined, [channel.port2])) as InitResult;
    this.idleThreadError = undefined;
    this.initialised(result);
  }

  /** `kill` aborting terminates the thread (piscina's cancellation); send a cancel command first to ask politely. */
  run(task: Exclude<RankTask, InitTask>, kill?: AbortSignal): Promise<RankTaskResult> {
    return this.runOnThread(task, kill);
  }

  private async runOnThread(task: RankTask, kill?: AbortSignal, transfer?: MessagePort[]): Promise<RankTaskResult> {
    this.busy = true;
    let result: RankTaskResult | TaskFailed;
    try {
      result = await this.pool.run(task, { ...(kill ? { signal: kill } : {}), ...(transfer ? { transferList: transfer } : {}) });
    } catch (error) {
      // The thread is gone (terminated, exited, out of heap); piscina starts a new one.
      // rank-side/thread-entry.ts resolves every task, so a rejection means just that.
      this.needsInit = true;
      this.detachPort();
      throw error;
    } finally {
      this.busy = false;
    }
    if (result.kind === "failed") throw new RankTaskFailed(result.error);
    return result;
  }

  /** Forgets the current port without counting its close as the thread's end. */
  private detachPort(): void {
    const port = this.port;
    this.port = undefined;
    port?.close();
  }

  command(command: KernelCommand): void {
    this.port?.postMessage(command);
  }

  protected get reachable(): boolean {
    return this.port !== undefined;
  }

  protected readonly forcedEnd = "its thread was terminated";

  protected endedError(error: unknown): RemoteErrorData {
    const data = toRemoteErrorData(error);
    const code = (error as { code?: string }).code;
    if (code === "ERR_WORKER_OUT_OF_MEMORY") {
      return { ...data, name: "RangeError", message: `ran out of heap (limit ${this.heapLimitMb} MiB); its thread ended and is restarted for the next cell (state lost)` };
    }
    return { ...data, message: `its thread ended (${data.message}); it is restarted for the next cell (state lost)` };
  }

  async close(): Promise<void> {
    this.detachPort();
    await this.pool.destroy();
  }
}
