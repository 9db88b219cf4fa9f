/**
 * The kernel's handle on one rank, whatever runs it (a worker thread, a
 * child process): what the group's cell lifecycle and the `%dist` commands
 * need, and the event routing every kind of handle shares (`RankMailbox`).
 */
import type { RemoteErrorData } from "../../errors";
import type { TfBackendName } from "../../compute/backend-names";
import type { GpuAssignment, InitTask, KernelCommand, RankEvent, RankTask, RankTaskResult } from "../rank-messages";

export interface RankInfo {
  rank: number;
  size: number;
  host: string;
  tfBackend?: TfBackendName;
  /** `--backend gpus`: the GPU left visible to this rank's process. */
  gpu?: GpuAssignment;
  /** `--memory`: the most memory the rank may hold (bytes); absent: no cap beyond the heap's. */
  memoryCapBytes?: number;
}

/**
 * A task threw in the rank's own code (not the cell's code: that is a `CellResult`), e.g. a pulled
 * value that cannot be copied to the kernel. The rank's thread or process and its state live on.
 */
export class RankTaskFailed extends Error {
  override readonly name = "RankTaskFailed";
  constructor(readonly remote: RemoteErrorData) {
    super(remote.message);
  }
}

export type StatusEvent = Extract<RankEvent, { kind: "status" }>;

export interface RankHandle {
  readonly info: RankInfo;
  /** Set when the rank has to be (re)initialised before its next task: never started, or its thread/process ended. */
  readonly needsInit: boolean;
  readonly busy: boolean;
  /** Why the rank's thread or process ended while it had no task (nobody was told yet); cleared by init. */
  readonly endedWhileIdle?: string;
  /** As the rank reported at init, or later when it loaded TensorFlow.js: TensorFlow.js backend and device. */
  readonly tfBackend: string;
  readonly device: string;
  /** The rank loaded TensorFlow.js before a cell (it defers it until a cell needs it). */
  tfLoaded(backend: string, device: string): void;
  /** Starts (or restarts) the rank: console capture, TensorFlow.js, scope. */
  init(): Promise<void>;
  /** Runs one task; `kill` aborting ends the rank's thread or process under it (its state is lost). */
  run(task: Exclude<RankTask, InitTask>, kill?: AbortSignal): Promise<RankTaskResult>;
  command(command: KernelCommand): void;
  /** Heap and backend; undefined if the rank does not answer within `waitMs` (busy in synchronous code). */
  status(waitMs: number): Promise<StatusEvent | undefined>;
  /** Resolves once the rank's output of `cellId` has all arrived, or after `waitMs`. */
  cellEnded(cellId: number, waitMs: number): Promise<void>;
  /** The error to report for a task whose thread or process ended under it. */
  lossError(error: unknown, killedByKernel: boolean): RemoteErrorData;
  close(): Promise<void>;
}

/**
 * Routes a rank's events: end-of-cell markers and status answers to the
 * waiters the handle registered, everything else (output, displays, spans)
 * to the group's `onEvent`.
 */
export class RankMailbox {
  private nextRequest = 1;
  /** Cell ids whose end marker arrived, and waiters for markers still to come. */
  private lastEndedCell = 0;
  private readonly endWaiters = new Map<number, () => void>();
  private readonly statusWaiters = new Map<number, (event: StatusEvent) => void>();

  constructor(
    private readonly rank: number,
    private readonly onEvent: (rank: number, event: RankEvent) => void,
  ) {}

  /** Asks through `send` and waits up to `waitMs` for the answer. */
  status(send: (command: KernelCommand) => void, waitMs: number): Promise<StatusEvent | undefined> {
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
      send({ kind: "status", requestId });
    });
  }

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

  receive(event: RankEvent): void {
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
    this.onEvent(this.rank, event);
  }
}
