/**
 * A group of N thread ranks sharing one communication world. The group
 * outlives cells: while its shape is unchanged each rank keeps its state.
 *
 * Cell lifecycle (`runCell`): send the compiled JS to every rank; when the
 * first rank fails, cancel the others (the world's cancel word wakes ranks
 * waiting in a collective, a cancel message ends pending awaits); when the
 * user interrupts, cancel everyone. Ranks still busy `graceMs` after a
 * cancel are stuck in synchronous code: their threads are terminated and
 * started afresh, and the result lists them in `lostState`.
 */
import { hostname } from "node:os";
import { toRemoteErrorData, type RemoteErrorData } from "../errors";
import { cancelCommWorld, createCommWorld } from "./comm-world";
import type { CompiledCell } from "../repl/cell-compiler";
import type { CellResult, CellValue, GroupShape, RankEvent } from "./protocol";
import { RANK_HEAP_LIMIT_MB, ThreadRank } from "./thread-rank";

/** How long the kernel waits for a finished rank's remaining output to arrive (milliseconds). */
const OUTPUT_DRAIN_MS = 500;

/** How long cancelled ranks get to stop by themselves before their threads are terminated (milliseconds). */
export const CANCEL_GRACE_MS = 1500;

export type RankOutcome =
  | { ok: true; value: CellValue }
  | { ok: false; error: RemoteErrorData; cancelled: boolean };

export interface GroupCellResult {
  outcomes: RankOutcome[];
  /** Rank whose failure cancelled the others, if any (first to fail). */
  firstFailure?: number;
  interrupted: boolean;
  /** Ranks whose threads were terminated and restarted: their declarations are gone. */
  lostState: number[];
}

export interface RunCellOptions {
  cellId: number;
  cell: CompiledCell;
  /** `cell 5`: how stack frames name the cell. */
  cellName: string;
  /** Collective timeout, milliseconds. */
  timeoutMs: number;
  /** Aborted by the user's interrupt. */
  interrupt: AbortSignal;
  /** Ranks record timeline spans (false with `--no-timeline`). */
  timeline: boolean;
}

export class ThreadGroup {
  readonly ranks: ThreadRank[];
  readonly host = hostname();
  private world?: unknown;
  private worldTimeoutMs = -1;
  private closed = false;

  constructor(
    readonly shape: GroupShape,
    onEvent: (rank: number, event: RankEvent) => void,
  ) {
    this.ranks = Array.from(
      { length: shape.size },
      (_, rank) => new ThreadRank({ rank, size: shape.size, host: this.host, ...(shape.tfBackend ? { tfBackend: shape.tfBackend } : {}) }, onEvent),
    );
  }

  /** Initialises ranks that need it and (re)joins everyone to a world with this timeout. */
  async prepare(timeoutMs: number): Promise<void> {
    const fresh = this.ranks.filter((rank) => rank.needsInit);
    await Promise.all(fresh.map((rank) => rank.init()));
    if (fresh.length === 0 && this.world !== undefined && this.worldTimeoutMs === timeoutMs) return;
    // A respawned rank cannot resume a world mid-call: everyone joins a new one.
    this.world = createCommWorld(this.shape.size);
    this.worldTimeoutMs = timeoutMs;
    const connect = { kind: "connect" as const, commState: this.world, timeoutMs, ...(this.shape.link ? { link: this.shape.link } : {}) };
    await Promise.all(this.ranks.map((rank) => rank.run(connect)));
  }

  async runCell(options: RunCellOptions): Promise<GroupCellResult> {
    await this.prepare(options.timeoutMs);
    const outcomes: Array<RankOutcome | undefined> = new Array(this.ranks.length).fill(undefined);
    const killers = this.ranks.map(() => new AbortController());
    const lostState: number[] = [];
    let firstFailure: number | undefined;
    let cancelReason: string | undefined;
    let graceTimer: NodeJS.Timeout | undefined;

    const cancelAll = (reason: string): void => {
      if (cancelReason !== undefined) return;
      cancelReason = reason;
      if (this.world !== undefined) cancelCommWorld(this.world, reason);
      for (const rank of this.ranks) rank.command({ kind: "cancel", cellId: options.cellId, reason });
      graceTimer = setTimeout(() => {
        this.ranks.forEach((rank, index) => {
          if (outcomes[index] === undefined) {
            lostState.push(index);
            killers[index]!.abort();
          }
        });
      }, CANCEL_GRACE_MS);
    };
    const onInterrupt = (): void => cancelAll("interrupted by the user");
    if (options.interrupt.aborted) onInterrupt();
    else options.interrupt.addEventListener("abort", onInterrupt, { once: true });

    const task = { kind: "cell" as const, cellId: options.cellId, cell: options.cell, cellName: options.cellName, timeline: options.timeline };
    await Promise.all(
      this.ranks.map(async (rank, index) => {
        let outcome: RankOutcome;
        try {
          const result = (await rank.run(task, killers[index]!.signal)) as CellResult;
          outcome = result.ok ? { ok: true, value: result.value } : { ok: false, error: result.error, cancelled: result.cancelled && cancelReason !== undefined };
        } catch (error) {
          outcome = { ok: false, error: threadLoss(error, killers[index]!.signal.aborted), cancelled: killers[index]!.signal.aborted };
          if (!killers[index]!.signal.aborted) lostState.push(index);
        }
        outcomes[index] = outcome;
        if (!outcome.ok && !outcome.cancelled && firstFailure === undefined && cancelReason === undefined) {
          firstFailure = index;
          cancelAll(`rank ${index} failed`);
        }
      }),
    );
    clearTimeout(graceTimer);
    options.interrupt.removeEventListener("abort", onInterrupt);
    const finishedNormally = this.ranks.filter((_, index) => !killers[index]!.signal.aborted && !lostState.includes(index));
    await Promise.all(finishedNormally.map((rank) => rank.cellEnded(options.cellId, OUTPUT_DRAIN_MS)));
    // Respawned threads need init before the next cell; the world was cancelled, so rebuild it.
    if (cancelReason !== undefined) this.world = undefined;
    return {
      outcomes: outcomes as RankOutcome[],
      ...(firstFailure !== undefined ? { firstFailure } : {}),
      interrupted: options.interrupt.aborted,
      lostState: [...new Set(lostState)].sort((a, b) => a - b),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.world !== undefined) cancelCommWorld(this.world, "group stopped");
    await Promise.allSettled(this.ranks.map((rank) => rank.close()));
  }
}

/** The error of a rank whose thread ended under it (terminated by us, exited, out of heap). */
function threadLoss(error: unknown, terminatedByKernel: boolean): RemoteErrorData {
  if (terminatedByKernel) {
    return { name: "Terminated", message: "did not stop when cancelled; its thread was terminated and restarted (state lost)", stack: "" };
  }
  const data = toRemoteErrorData(error);
  const code = (error as { code?: string }).code;
  if (code === "ERR_WORKER_OUT_OF_MEMORY") {
    return { ...data, name: "RangeError", message: `ran out of heap (limit ${RANK_HEAP_LIMIT_MB} MiB); its thread was restarted (state lost)` };
  }
  return { ...data, message: `its thread ended (${data.message}); it was restarted (state lost)` };
}

