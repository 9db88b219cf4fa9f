/**
 * What every kind of rank handle does the same way (thread ranks in
 * backends/threads/, process ranks in backends/processes/, which remote
 * ranks reuse): the state the group reads after init, the init task built
 * from the rank's `RankInfo`, and status queries and end-of-cell waits
 * answered through the rank's `RankMailbox`. A subclass supplies how the
 * rank starts, runs tasks, takes commands and ends.
 */
import type { RemoteErrorData } from "../../errors";
import type { InitResult, InitTask, KernelCommand, RankEvent, RankTask, RankTaskResult } from "../rank-messages";
import { RankMailbox, type RankHandle, type RankInfo, type StatusEvent } from "./rank-handle";

/** An init task without what only one kind of handle adds (a thread rank's MessagePort). */
export type InitTaskFields = Omit<InitTask, "port">;

export abstract class RankHandleBase implements RankHandle {
  needsInit = true;
  endedWhileIdle?: string;
  tfBackend = "unknown";
  device = "unknown";
  protected readonly mailbox: RankMailbox;

  constructor(
    readonly info: RankInfo,
    onEvent: (rank: number, event: RankEvent) => void,
  ) {
    this.mailbox = new RankMailbox(info.rank, onEvent);
  }

  abstract readonly busy: boolean;
  /** True while the kernel has a live line to the rank (a thread's port, a process's channel). */
  protected abstract readonly reachable: boolean;
  abstract init(): Promise<void>;
  abstract run(task: Exclude<RankTask, InitTask>, kill?: AbortSignal): Promise<RankTaskResult>;
  abstract command(command: KernelCommand): void;
  abstract close(): Promise<void>;
  /** How the kernel ends a rank of this kind that does not stop: "its thread was terminated", "its process was killed". */
  protected abstract readonly forcedEnd: string;
  /** The error for a task whose thread or process ended by itself under it. */
  protected abstract endedError(error: unknown): RemoteErrorData;

  lossError(error: unknown, killedByKernel: boolean): RemoteErrorData {
    if (killedByKernel) {
      return { name: "Terminated", message: `did not stop when cancelled; ${this.forcedEnd} and is restarted for the next cell (state lost)`, stack: "" };
    }
    return this.endedError(error);
  }

  status(waitMs: number): Promise<StatusEvent | undefined> {
    if (!this.reachable || this.needsInit) return Promise.resolve(undefined);
    return this.mailbox.status((command) => this.command(command), waitMs);
  }

  cellEnded(cellId: number, waitMs: number): Promise<void> {
    return this.mailbox.cellEnded(cellId, waitMs);
  }

  /** The init task for this rank: identity, TensorFlow.js backend, and the GPU it was given if any. */
  protected initTaskFields(): InitTaskFields {
    return {
      kind: "init",
      rank: this.info.rank,
      size: this.info.size,
      localRank: this.info.rank,
      host: this.info.host,
      ...(this.info.tfBackend !== undefined ? { tfBackend: this.info.tfBackend } : {}),
      ...(this.info.gpu !== undefined ? { gpu: this.info.gpu } : {}),
    };
  }

  tfLoaded(backend: string, device: string): void {
    this.tfBackend = backend;
    this.device = device;
  }

  /** Records what the rank reported at init; it is ready for tasks. */
  protected initialised(result: InitResult): void {
    this.endedWhileIdle = undefined;
    this.tfBackend = result.tfBackend;
    this.device = result.device;
    this.needsInit = false;
  }
}
