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

export class TimelineObserver implements CellObserver {
  private running: { cellId: number; session: TimelineSession } | undefined;
  private lastPayload: TimelinePayload | undefined;

  /** The final timeline of the last distributed cell that recorded one. */
  get last(): TimelinePayload | undefined {
    return this.lastPayload;
  }

  cellStarted(cellId: number, group: RankGroup, io: ExecutionIO, options: DistributedOptions): void {
    this.running?.session.dispose();
    const ranks = group.ranks.map((rank) => ({ rank: rank.info.rank, host: group.hostOf(rank.info.rank), device: rank.device }));
    const session = new TimelineSession({ ranks, cellStartUs: epochMicros(), show: options.timeline === "always" ? "always" : "auto" });
    this.running = { cellId, session };
    session.start(io);
  }

  traceBatch(cellId: number, rank: number, batch: unknown): void {
    const running = this.running;
    // Batches of an earlier cell (an un-awaited collective finishing late) have no display to go to.
    if (running === undefined || running.cellId !== cellId || !isSpanBatch(batch, rank)) return;
    running.session.onBatch(batch);
  }

  cellEnded(cellId: number, _ok: boolean): void {
    const running = this.running;
    if (running === undefined || running.cellId !== cellId) return;
    this.running = undefined;
    this.lastPayload = running.session.finish();
  }
}

/** The recorder of rank `rank` posted it (a batch names its rank; a respawned rank's old port or process is gone). */
function isSpanBatch(batch: unknown, rank: number): batch is SpanBatch {
  const candidate = batch as Partial<SpanBatch> | null;
  return candidate !== null && typeof candidate === "object" && candidate.rank === rank && Array.isArray(candidate.spans);
}
