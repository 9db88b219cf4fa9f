/**
 * The kernel side of recording: merges the batches that ranks post into one
 * timeline on the kernel's clock, and builds payloads from it.
 */
import { ArrivalWaits } from "./arrival-waits";
import { forEachCommSpan } from "./comm-span-columns";
import type { ClockOffsetEstimate } from "./clock";
import type { TimelinePayload, TimelineRank } from "./payload";
import type { SpanBatch } from "./recorder";
import type { TimelineSpan } from "./span";
import { summarizeTimeline, type TimelineSummary } from "./summary";

export interface TimelineAggregatorOptions {
  ranks: TimelineRank[];
  /** the cell's start on the kernel's clock, epoch microseconds */
  cellStartUs: number;
  /** Live payloads carry the newest this many spans at most (the final one has all). */
  liveSpanLimit?: number;
}

export const DEFAULT_LIVE_SPAN_LIMIT = 20_000;

export class TimelineAggregator {
  readonly ranks: TimelineRank[];
  readonly cellStartUs: number;
  private readonly liveSpanLimit: number;
  private readonly offsetByRank = new Map<number, number>();
  private readonly spans: TimelineSpan[] = [];
  /** idle spans derived from the arrival times of linked calls */
  private readonly waits = new ArrivalWaits();
  private cachedSummary: { spanCount: number; summary: TimelineSummary } | undefined;

  constructor(options: TimelineAggregatorOptions) {
    this.ranks = options.ranks.map((r) => ({ ...r }));
    this.cellStartUs = options.cellStartUs;
    this.liveSpanLimit = options.liveSpanLimit ?? DEFAULT_LIVE_SPAN_LIMIT;
    for (const r of this.ranks) this.offsetByRank.set(r.rank, r.clockOffsetUs ?? 0);
  }

  /** Puts a rank's later batches on the kernel clock (ranks on other hosts). */
  setClockOffset(rank: number, estimate: ClockOffsetEstimate): void {
    this.offsetByRank.set(rank, estimate.offsetUs);
    const info = this.ranks.find((r) => r.rank === rank);
    if (info !== undefined) {
      info.clockOffsetUs = estimate.offsetUs;
      info.clockUncertaintyUs = estimate.uncertaintyUs;
    }
  }

  /** Names the device a rank computes on now (a cell that loaded TensorFlow.js changed it from "not loaded yet"). */
  setDevice(rank: number, device: string): void {
    const info = this.ranks.find((r) => r.rank === rank);
    if (info !== undefined) info.device = device;
  }

  /** Adds one batch; its spans' `start` is epoch microseconds on the posting rank's clock. */
  add(batch: SpanBatch): void {
    const offset = this.offsetByRank.get(batch.rank) ?? 0;
    const origin = this.cellStartUs + offset;
    for (const raw of batch.spans) {
      const span: TimelineSpan = { rank: batch.rank, name: raw.name, cat: raw.cat, ts: raw.start - origin, dur: raw.dur };
      if (raw.args !== undefined) span.args = raw.args;
      this.push(span);
    }
    if (batch.comm !== undefined) {
      // malformed columns are dropped whole (a rank runs user code)
      forEachCommSpan(batch.comm, (name, start, dur, args) => this.push({ rank: batch.rank, name, cat: "comm", ts: start - origin, dur, args }));
    }
  }

  private push(span: TimelineSpan): void {
    this.spans.push(span);
    if (span.cat === "comm") for (const idle of this.waits.add(span)) this.spans.push(idle);
  }

  get spanCount(): number {
    return this.spans.length;
  }

  /** The summary of every span so far; with `allowStale`, the last one computed if there is one. */
  summary(allowStale = false): TimelineSummary {
    if (this.cachedSummary === undefined || (!allowStale && this.cachedSummary.spanCount !== this.spans.length)) {
      this.cachedSummary = { spanCount: this.spans.length, summary: summarizeTimeline(this.spans, this.ranks.length) };
    }
    return this.cachedSummary.summary;
  }

  /**
   * The payload of a live update (`live`), bounded in size, or the final one
   * with every span. `staleSummaryOk` lets a live update reuse the last summary.
   */
  payload(live: boolean, staleSummaryOk = false): TimelinePayload {
    // The final payload: calls some member never reported still charge the waits of those that did.
    if (!live) for (const idle of this.waits.drain()) this.spans.push(idle);
    const summary = this.summary(live && staleSummaryOk);
    if (live && this.spans.length > this.liveSpanLimit) {
      return {
        version: 1,
        ranks: this.ranks,
        spans: this.spans.slice(this.spans.length - this.liveSpanLimit),
        summary,
        live,
        omittedSpans: this.spans.length - this.liveSpanLimit,
      };
    }
    return { version: 1, ranks: this.ranks, spans: [...this.spans], summary, live };
  }
}
