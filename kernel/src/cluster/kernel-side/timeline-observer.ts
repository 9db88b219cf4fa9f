/**
 * The kernel's side of the live timeline: one `TimelineSession` per
 * `%%distributed` cell, fed by the span batches the ranks post, finished
 * once every rank's result is in (also after an error or an interrupt), and
 * kept as the last timeline for `%dist timeline`.
 */
import type { DistributedOptions } from "../../magics/distributed-spec";
import type { ExecutionIO } from "../../protocol/backend";
import { TimelineSession, epochMicros, type SpanBatch, type TimelinePayload } from "../../trace";
import type { CellObserver } from "./distributed-session";
import type { RankGroup } from "./rank-group";
import type { ClockOffsetEstimate } from "../../trace/clock";
import { rankClocks } from "../../hosts/clock-sync";

export class TimelineObserver implements CellObserver {
  /** `clockOf`: the clock offset of a rank's host (ranks on other hosts); `applied`: the estimate each rank's batches use now. */
  private running: { cellId: number; group: RankGroup; session: TimelineSession; clockOf: ((rank: number) => ClockOffsetEstimate | undefined) | undefined; applied: Map<number, ClockOffsetEstimate> } | undefined;
  private lastPayload: TimelinePayload | undefined;

  /** The final timeline of the last distributed cell that recorded one. */
  get last(): TimelinePayload | undefined {
    return this.lastPayload;
  }

  cellStarted(cellId: number, group: RankGroup, io: ExecutionIO, options: DistributedOptions): void {
    this.running?.session.dispose();
    const ranks = group.ranks.map((rank) => ({ rank: rank.info.rank, host: group.hostOf(rank.info.rank), device: rank.device }));
    const session = new TimelineSession({ ranks, cellStartUs: epochMicros(), show: options.timeline === "always" ? "always" : "auto" });
    this.running = { cellId, group, session, clockOf: rankClocks.get(group), applied: new Map() };
    for (const { rank } of ranks) this.applyClock(this.running, rank);
    session.start(io);
  }

  traceBatch(cellId: number, rank: number, batch: unknown): void {
    const running = this.running;
    // Batches of an earlier cell (an un-awaited collective finishing late) have no display to go to.
    if (running === undefined || running.cellId !== cellId || !isSpanBatch(batch, rank)) return;
    this.applyClock(running, rank);
    running.session.onBatch(batch);
  }

  /** Ranks on other hosts stamp spans on their host's clock: their batches move onto the kernel's with the latest estimate. */
  private applyClock(running: NonNullable<TimelineObserver["running"]>, rank: number): void {
    const estimate = running.clockOf?.(rank);
    if (estimate === undefined || running.applied.get(rank) === estimate) return;
    running.applied.set(rank, estimate);
    running.session.setClockOffset(rank, estimate);
  }

  cellEnded(cellId: number, _ok: boolean): void {
    const running = this.running;
    if (running === undefined || running.cellId !== cellId) return;
    this.running = undefined;
    // A cell that loaded TensorFlow.js changed its ranks' devices (known from their results): the final bundle names them.
    for (const rank of running.group.ranks) running.session.setDevice(rank.info.rank, rank.device);
    this.lastPayload = running.session.finish();
  }
}

/** The recorder of rank `rank` posted it (a batch names its rank; a respawned rank's old port or process is gone). */
function isSpanBatch(batch: unknown, rank: number): batch is SpanBatch {
  const candidate = batch as Partial<SpanBatch> | null;
  return candidate !== null && typeof candidate === "object" && candidate.rank === rank && Array.isArray(candidate.spans);
}
