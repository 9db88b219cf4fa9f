/**
 * A group of N ranks sharing one communication world, whatever runs the
 * ranks (thread-group.ts, process-group.ts build one). The group outlives
 * cells: while its shape is unchanged each rank keeps its state.
 *
 * Cell lifecycle (`runCell`): send the compiled JS to every rank; when the
 * first rank fails, cancel the others (the world's cancel wakes ranks
 * waiting in a collective, a cancel command ends pending awaits); when the
 * user interrupts, cancel everyone. Ranks still busy `CANCEL_GRACE_MS` after
 * a cancel are stuck in synchronous code: their threads or processes are
 * ended and started afresh, and the result lists them in `lostState`. A
 * rank whose thread or process ends by itself is reported as the failing
 * rank (its peers only lost it) and started afresh for the next cell.
 */
import { hostname } from "node:os";
import { countRanks, describeRanks, toRemoteErrorData, type RemoteErrorData } from "../../errors";
import type { CompiledCell } from "../../repl/cell-compiler";
import type { KernelWorld } from "../comm-world";
import type { CellResult, CellValue, GroupShape } from "../rank-messages";
import { RankTaskFailed, type RankHandle } from "./rank-handle";

/** How long the kernel waits for a finished rank's remaining output to arrive (milliseconds). */
const OUTPUT_DRAIN_MS = 500;

/** How long cancelled ranks get to stop by themselves before their threads or processes are ended (milliseconds). */
export const CANCEL_GRACE_MS = 1500;

export type RankOutcome =
  | { ok: true; value: CellValue }
  | { ok: false; error: RemoteErrorData; cancelled: boolean };

export interface GroupCellResult {
  outcomes: RankOutcome[];
  /** Rank whose failure cancelled the others, if any (first to fail, or a rank whose thread or process ended). */
  firstFailure?: number;
  interrupted: boolean;
  /** Ranks whose threads or processes were ended and restarted: their declarations are gone. */
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

/** Creates the kernel's side of a new world for `size` ranks. */
export type WorldFactory = (size: number) => Promise<KernelWorld>;

/**
 * Watches the group's memory while a cell runs (thread groups: thread-memory-budget.ts);
 * calls `onExceeded` with the reason, and returns the switch that stops watching.
 */
export interface MemoryWatch {
  watch(onExceeded: (reason: string) => void): () => void;
}

/** What a prepare may use while it waits for a backend (agents dialling in): the cell's interrupt, a live progress line. */
export interface PrepareContext {
  interrupt?: AbortSignal;
  /** Shows `line` under the cell, replacing the previous progress line. */
  progress?: (line: string) => void;
  /**
   * The cell's `--rendezvous-timeout`, milliseconds, when it gave one: how long this cell waits for
   * agents to dial in (again, after a lost connection). Else the value the group started with.
   */
  rendezvousTimeoutMs?: number;
}

/**
 * What a backend does around the shared lifecycle: `ready` before each prepare (e.g. dial remote
 * agents; it may return lines to tell the cell, such as which ranks lost their state), `closed` after close.
 */
export interface GroupHooks {
  /** `timeoutMs`: the collective timeout of the cell about to run (remote backends time their heartbeats by it). */
  ready?(timeoutMs: number, context: PrepareContext): Promise<string[] | void>;
  closed?(): void;
}

export class RankGroup {
  readonly host = hostname();
  private world?: KernelWorld;
  private worldTimeoutMs = -1;
  private closed = false;

  constructor(
    readonly shape: GroupShape,
    readonly ranks: readonly RankHandle[],
    private readonly newWorld: WorldFactory,
    private readonly memory?: MemoryWatch,
    private readonly hooks: GroupHooks = {},
  ) {}

  /** Where rank `rank` runs: this machine, or for --backend hosts its agent's host:port. */
  hostOf(rank: number): string {
    return this.shape.backend === "hosts" ? (this.ranks[rank]?.info.host ?? this.host) : this.host;
  }

  /**
   * Initialises ranks that need it and (re)joins everyone to a world with this timeout. Returns a
   * line for each rank that had ended while idle and was started afresh (its state is lost).
   */
  async prepare(timeoutMs: number, context: PrepareContext = {}): Promise<string[]> {
    const notes = (await this.hooks.ready?.(timeoutMs, context)) ?? [];
    const fresh = this.ranks.filter((rank) => rank.needsInit);
    const restarted = notes.concat(fresh.flatMap((rank) =>
      rank.endedWhileIdle === undefined ? [] : [`rank ${rank.info.rank} had ended while idle (${rank.endedWhileIdle}); started it afresh, its declarations are lost`],
    ));
    await settleAll(fresh.map((rank) => rank.init()), fresh.map((rank) => rank.info.rank), "could not start");
    if (fresh.length === 0 && this.world !== undefined && this.worldTimeoutMs === timeoutMs) return restarted;
    // A respawned rank cannot resume a world mid-call: everyone joins a new one.
    this.world = undefined;
    const world = await this.newWorld(this.shape.size);
    const connect = { kind: "connect" as const, commState: world.address, timeoutMs, ...(this.shape.link ? { link: this.shape.link } : {}) };
    const joins = this.ranks.map((rank) =>
      rank.run(connect).catch((error: unknown) => {
        // The others may be waiting for this rank at the rendezvous: end their wait now.
        world.formed();
        throw error;
      }),
    );
    try {
      await settleAll(joins, this.ranks.map((rank) => rank.info.rank), "could not join the group's world");
    } finally {
      world.formed();
    }
    this.world = world;
    this.worldTimeoutMs = timeoutMs;
    return restarted;
  }

  async runCell(options: RunCellOptions): Promise<GroupCellResult> {
    await this.prepare(options.timeoutMs);
    const outcomes: Array<RankOutcome | undefined> = new Array(this.ranks.length).fill(undefined);
    const killers = this.ranks.map(() => new AbortController());
    const lostState: number[] = [];
    /** Ranks whose thread or process ended by itself during the cell. */
    const ended: number[] = [];
    let firstFailure: number | undefined;
    let cancelReason: string | undefined;
    let graceTimer: NodeJS.Timeout | undefined;

    const cancelAll = (reason: string): void => {
      if (cancelReason !== undefined) return;
      cancelReason = reason;
      this.world?.cancel(reason);
      for (const rank of this.ranks) rank.command({ kind: "cancel", cellId: options.cellId, reason });
      graceTimer = setTimeout(() => {
        this.ranks.forEach((_, index) => {
          if (outcomes[index] === undefined) {
            lostState.push(index);
            killers[index]!.abort();
          }
        });
      }, CANCEL_GRACE_MS);
    };
    /** Why the group's memory watch terminated the ranks still running, if it did. */
    let overMemory: string | undefined;
    const stopMemoryWatch = this.memory?.watch((reason) => {
      overMemory = reason;
      this.ranks.forEach((_, index) => {
        if (outcomes[index] !== undefined) return;
        lostState.push(index);
        killers[index]!.abort();
      });
      cancelAll("the group went over its memory budget");
    });
    const onInterrupt = (): void => cancelAll("interrupted by the user");
    if (options.interrupt.aborted) onInterrupt();
    else options.interrupt.addEventListener("abort", onInterrupt, { once: true });

    const task = { kind: "cell" as const, cellId: options.cellId, cell: options.cell, cellName: options.cellName, timeline: options.timeline };
    await Promise.all(
      this.ranks.map(async (rank, index) => {
        const killed = killers[index]!.signal;
        let outcome: RankOutcome;
        try {
          const result = (await rank.run(task, killed)) as CellResult;
          if (result.tf) rank.tfLoaded(result.tf.backend, result.tf.device);
          outcome = result.ok ? { ok: true, value: result.value } : { ok: false, error: result.error, cancelled: result.cancelled && cancelReason !== undefined };
        } catch (error) {
          if (error instanceof RankTaskFailed && !killed.aborted) {
            // The rank's own code failed under the cell; its thread or process, and its state, live on.
            outcome = { ok: false, error: error.remote, cancelled: false };
          } else if (killed.aborted && overMemory !== undefined) {
            outcome = { ok: false, error: { name: "RankMemoryError", message: `${overMemory}; it is restarted for the next cell (state lost)`, stack: "" }, cancelled: false };
          } else {
            outcome = { ok: false, error: rank.lossError(error, killed.aborted), cancelled: killed.aborted };
          }
          if (!killed.aborted && !(error instanceof RankTaskFailed)) {
            lostState.push(index);
            ended.push(index);
          }
        }
        outcomes[index] = outcome;
        if (!outcome.ok && !outcome.cancelled && firstFailure === undefined && (cancelReason === undefined || overMemory !== undefined)) {
          firstFailure = index;
          cancelAll(`${describeRanks([index])} failed`);
        }
      }),
    );
    clearTimeout(graceTimer);
    stopMemoryWatch?.();
    options.interrupt.removeEventListener("abort", onInterrupt);
    if (ended.length > 0) firstFailure = blameEndedRank(outcomes as RankOutcome[], ended, firstFailure);
    const finishedNormally = this.ranks.filter((_, index) => !killers[index]!.signal.aborted && !lostState.includes(index));
    await Promise.all(finishedNormally.map((rank) => rank.cellEnded(options.cellId, OUTPUT_DRAIN_MS)));
    // Respawned ranks need init before the next cell; the world was cancelled, so rebuild it.
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
    this.world?.cancel("group stopped");
    await Promise.allSettled(this.ranks.map((rank) => rank.close()));
    this.hooks.closed?.();
  }
}

/**
 * When a rank's thread or process ended by itself, its peers fail too, with
 * a lost connection, often before the kernel hears of the end. Unless an
 * error of its own came first, the ended rank is the cause: it becomes the
 * first failure, and peers that only lost it count as cancelled.
 */
function blameEndedRank(outcomes: RankOutcome[], ended: readonly number[], firstFailure: number | undefined): number {
  const lostPeer = (outcome: RankOutcome | undefined) => outcome !== undefined && !outcome.ok && outcome.error.name === "PeerLostError";
  let blamed = firstFailure;
  if (blamed === undefined || (!ended.includes(blamed) && lostPeer(outcomes[blamed]))) blamed = Math.min(...ended);
  if (ended.includes(blamed)) {
    for (const outcome of outcomes) if (lostPeer(outcome) && !outcome.ok) outcome.cancelled = true;
  }
  return blamed;
}

/** Waits for every promise; throws one error naming each rank whose promise failed. */
async function settleAll(work: Promise<unknown>[], ranks: readonly number[], what: string): Promise<void> {
  const settled = await Promise.allSettled(work);
  const failures = settled.flatMap((result, index) => (result.status === "rejected" ? [`rank ${ranks[index]}: ${toRemoteErrorData(result.reason).message}`] : []));
  if (failures.length === 0) return;
  throw new Error(`${failures.length === 1 ? "a rank" : countRanks(failures.length)} ${what}: ${failures.join("; ")}`);
}
