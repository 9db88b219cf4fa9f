/**
 * One cell's timeline, from the first span to the saved notebook: the seam the
 * cluster calls.
 *
 *   const session = new TimelineSession({ ranks, cellStartUs: epochMicros() });
 *   session.start(io);           // display_data with a display_id
 *   session.onBatch(batch);      // for every SpanBatch a rank posts
 *   const final = session.finish();  // last update_display_data, every span
 *
 * Updates are throttled: at most one per `minUpdateIntervalMs`, and one
 * follows every batch within that interval, so a running cell redraws 2-4
 * times a second.
 *
 * With `show: "auto"` (`%%distributed --timeline auto`, the default) the
 * display waits until the cell has run a collective or `autoShowAfterMs` has
 * passed; a short cell that ran no collective (printing a line, failing an
 * option check) ends with no timeline under it. `%dist timeline` still has it.
 */
import type { DisplayPayload, ExecutionIO } from "../protocol/backend";
import { TimelineAggregator, type TimelineAggregatorOptions } from "./aggregator";
import { liveBundle, timelineBundle } from "./bundle";
import type { ClockOffsetEstimate } from "./clock";
import type { TimelinePayload } from "./payload";
import type { SpanBatch } from "./recorder";

export interface TimelineSessionOptions extends TimelineAggregatorOptions {
  /** milliseconds between live updates at least; 333 gives 3 per second */
  minUpdateIntervalMs?: number;
  /** milliseconds; tests pass a fake clock */
  now?: () => number;
  /** "always": shown from `start`; "auto": shown once the cell ran a collective or ran `autoShowAfterMs`. */
  show?: TimelineShow;
  /** milliseconds a cell without collectives runs before "auto" shows its timeline; default 500 */
  autoShowAfterMs?: number;
}

export type TimelineShow = "always" | "auto";

/** `--timeline auto`: a cell this long (milliseconds) gets its timeline even without a collective. */
export const AUTO_SHOW_AFTER_MS = 500;

export const DEFAULT_MIN_UPDATE_INTERVAL_MS = 333;
/** Live updates recompute the summary (O(n log n) in spans) at most this often, milliseconds. */
const LIVE_SUMMARY_INTERVAL_MS = 1000;
/**
 * After a live update, the next waits at least this many times the update's own cost (and after
 * a summary, the next summary): live updates take at most about 1/20 of the kernel's thread.
 * Ranks that call collectives in a tight loop send tens of thousands of spans a second; with
 * updates and summaries at fixed intervals, a profile of the kernel's thread during such a loop
 * showed it busy for most of the cell, about half of it in summaries and JSON, on the cores the
 * ranks run on (docs/benchmarks.md, "The timeline under a tight collective loop").
 */
export const LIVE_UPDATE_COST_FACTOR = 20;

let displayCounter = 0;

export class TimelineSession {
  readonly displayId: string;
  private readonly aggregator: TimelineAggregator;
  private readonly minUpdateIntervalMs: number;
  private readonly now: () => number;
  private io: ExecutionIO | undefined;
  private lastUpdateMs = Number.NEGATIVE_INFINITY;
  private lastSummaryMs = Number.NEGATIVE_INFINITY;
  /** milliseconds between live updates now: minUpdateIntervalMs, or more after a costly update */
  private updateGapMs: number;
  /** milliseconds of wall time the last update that recomputed the summary took */
  private summaryCostMs = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private dirty = false;
  private finished = false;
  private lastLivePayload: TimelinePayload | undefined;
  private readonly show: TimelineShow;
  private readonly autoShowAfterMs: number;
  private startedMs = 0;
  /** The display exists (always at `start` for "always"; for "auto" once a reason to show came). */
  private shown = false;
  private sawCollective = false;
  private autoTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Live updates sent so far, and the last one's payload bytes (JSON of the
   * timeline mime type). The bytes are measured when read: serialising the
   * payload once more on every update would double the kernel's JSON work.
   */
  readonly stats: { readonly updates: number; readonly lastUpdateBytes: number };
  private updates = 0;

  constructor(options: TimelineSessionOptions) {
    this.aggregator = new TimelineAggregator(options);
    this.minUpdateIntervalMs = options.minUpdateIntervalMs ?? DEFAULT_MIN_UPDATE_INTERVAL_MS;
    this.updateGapMs = this.minUpdateIntervalMs;
    this.now = options.now ?? Date.now;
    this.show = options.show ?? "always";
    this.autoShowAfterMs = options.autoShowAfterMs ?? AUTO_SHOW_AFTER_MS;
    this.displayId = `distlab-timeline-${process.pid}-${++displayCounter}-${Math.random().toString(36).slice(2, 8)}`;
    const self = this;
    this.stats = {
      get updates() {
        return self.updates;
      },
      get lastUpdateBytes() {
        return self.lastLivePayload === undefined ? 0 : Buffer.byteLength(JSON.stringify(self.lastLivePayload));
      },
    };
  }

  /**
   * Shows the (empty) timeline under the cell ("always"), or arms the wait
   * for a reason to show it ("auto"); later updates replace it in place.
   */
  start(io: ExecutionIO): void {
    this.io = io;
    this.startedMs = this.now();
    if (this.show === "always") {
      this.showLive();
      return;
    }
    this.autoTimer = setTimeout(() => this.showLive(), this.autoShowAfterMs);
    this.autoTimer.unref?.();
  }

  /** Whether the cell's display exists yet (false for a quiet "auto" cell). */
  get isShown(): boolean {
    return this.shown;
  }

  private showLive(): void {
    this.cancelAutoTimer();
    if (this.shown || this.finished || this.io === undefined) return;
    this.shown = true;
    this.dirty = false;
    this.lastUpdateMs = this.now();
    this.io.display(this.displayPayload(this.aggregator.payload(true), true));
  }

  private cancelAutoTimer(): void {
    if (this.autoTimer !== undefined) clearTimeout(this.autoTimer);
    this.autoTimer = undefined;
  }

  setClockOffset(rank: number, estimate: ClockOffsetEstimate): void {
    this.aggregator.setClockOffset(rank, estimate);
  }

  /** Names the device a rank computes on now, for the updates and the final bundle that follow. */
  setDevice(rank: number, device: string): void {
    this.aggregator.setDevice(rank, device);
  }

  /** Takes one rank's batch; a live update follows within `minUpdateIntervalMs` (longer after costly updates). */
  onBatch(batch: SpanBatch): void {
    if (this.finished) return;
    this.aggregator.add(batch);
    this.dirty = true;
    if (!this.sawCollective && ((batch.comm?.count ?? 0) > 0 || batch.spans.some((span) => span.cat === "comm"))) this.sawCollective = true;
    if (this.io === undefined) return;
    if (!this.shown) {
      if (this.sawCollective) this.showLive();
      return;
    }
    const waitMs = this.lastUpdateMs + this.updateGapMs - this.now();
    if (waitMs <= 0) this.sendLiveUpdate();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.sendLiveUpdate(), waitMs);
      this.timer.unref?.();
    }
  }

  /**
   * Sends the final bundle (every span, `live: false`), which the saved
   * notebook keeps, and returns its payload for `%dist timeline`. Call it once
   * every rank has returned its result: batches a rank posts before its result
   * on the same port arrive first.
   */
  finish(): TimelinePayload {
    this.cancelTimer();
    this.cancelAutoTimer();
    this.finished = true;
    const payload = this.aggregator.payload(false);
    if (this.shown) this.io?.display(this.displayPayload(payload, false), true);
    else if (this.io !== undefined && (this.sawCollective || this.now() - this.startedMs >= this.autoShowAfterMs)) {
      // A cell that earned its timeline between the last batch and its end: shown once, final.
      this.shown = true;
      this.io.display(this.displayPayload(payload, false));
    }
    return payload;
  }

  /** Stops live updates without a final one (the cell was cancelled and its output cleared). */
  dispose(): void {
    this.cancelTimer();
    this.cancelAutoTimer();
    this.finished = true;
  }

  private sendLiveUpdate(): void {
    this.cancelTimer();
    if (this.finished || !this.shown || this.io === undefined || !this.dirty) return;
    this.dirty = false;
    this.lastUpdateMs = this.now();
    const startedMs = performance.now(); // the cost is real time, whatever clock `now` is
    const staleSummaryOk = this.lastUpdateMs - this.lastSummaryMs < Math.max(LIVE_SUMMARY_INTERVAL_MS, LIVE_UPDATE_COST_FACTOR * this.summaryCostMs);
    if (!staleSummaryOk) this.lastSummaryMs = this.lastUpdateMs;
    const payload = this.aggregator.payload(true, staleSummaryOk);
    this.updates++;
    this.lastLivePayload = payload;
    this.io.display(this.displayPayload(payload, true), true);
    const costMs = performance.now() - startedMs;
    if (!staleSummaryOk) this.summaryCostMs = costMs;
    this.updateGapMs = Math.max(this.minUpdateIntervalMs, LIVE_UPDATE_COST_FACTOR * costMs);
  }

  /**
   * Live updates carry the payload and the text summary; the static HTML
   * picture is drawn once, into the final bundle the notebook keeps.
   */
  private displayPayload(payload: TimelinePayload, live: boolean): DisplayPayload {
    const data = live ? liveBundle(payload) : timelineBundle(payload);
    return { data, metadata: {}, transient: { display_id: this.displayId } };
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
