/**
 * The span recorder that lives in every rank.
 *
 * Disabled (`%%distributed --no-timeline`), every entry point checks one
 * boolean and returns: no clock read, no allocation. Enabled, spans are kept
 * in a buffer and handed to `post` in batches: when the buffer reaches
 * `maxBatch`, when `flushIntervalMs` has passed since the last batch, and on
 * `flush()` (the cluster calls it when the cell's body settles).
 */
import { epochMicros } from "./clock";
import { CommSpanColumns, type CommSpanFields, type PackedCommSpans } from "./comm-span-columns";
import type { RawSpan, SpanArgs, SpanCategory } from "./span";

/** What a rank posts to the kernel: spans on the rank's own clock. */
export interface SpanBatch {
  rank: number;
  spans: RawSpan[];
  /** the communicator's comm spans, in columns (comm-span-columns.ts) */
  comm?: PackedCommSpans;
}

export interface RankRecorderOptions {
  rank: number;
  enabled: boolean;
  /** Sends a batch to the kernel (a worker port, a socket); must not throw. */
  post: (batch: SpanBatch) => void;
  /** Longest a recorded span waits before it is posted, milliseconds. */
  flushIntervalMs?: number;
  /** Spans per batch at most. */
  maxBatch?: number;
  /** Epoch microseconds; tests pass a fake clock. */
  clock?: () => number;
}

const DEFAULT_FLUSH_INTERVAL_MS = 100;
const DEFAULT_MAX_BATCH = 4096;

export interface SpanOptions {
  /** "compute" unless told */
  cat?: SpanCategory;
  args?: SpanArgs;
}

export class SpanRecorder {
  readonly rank: number;
  private on: boolean;
  private readonly post: (batch: SpanBatch) => void;
  private readonly flushIntervalUs: number;
  private readonly maxBatch: number;
  private readonly clock: () => number;
  private buffer: RawSpan[] = [];
  private readonly comm = new CommSpanColumns();
  private lastFlushUs = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** collectives issued so far per group; every member issues them in the same order */
  private readonly seqByGroup = new Map<string, number>();

  constructor(options: RankRecorderOptions) {
    this.rank = options.rank;
    this.on = options.enabled;
    this.post = options.post;
    this.flushIntervalUs = (options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS) * 1000;
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.clock = options.clock ?? epochMicros;
    if (!(this.maxBatch >= 1)) throw new RangeError(`maxBatch must be >= 1, got ${options.maxBatch}`);
  }

  get enabled(): boolean {
    return this.on;
  }

  /** Turned per cell by `--no-timeline`; turning off posts what was buffered. */
  setEnabled(enabled: boolean): void {
    if (!enabled && this.on) this.flush();
    this.on = enabled;
  }

  /** Epoch microseconds on this rank's clock (0 when disabled: callers need not read the clock). */
  now(): number {
    return this.on ? this.clock() : 0;
  }

  /** Records a finished span; `start` from `now()`, `dur` in microseconds. */
  record(name: string, cat: SpanCategory, start: number, dur: number, args?: SpanArgs): void {
    if (!this.on) return;
    const span: RawSpan = args === undefined ? { name, cat, start, dur } : { name, cat, start, dur, args };
    this.buffer.push(span);
    this.recorded(start, start + dur);
  }

  /**
   * Records a comm span of the communicator (named after its op, args as comm-span-columns.ts lists),
   * kept in columns rather than as an object. `peers`: pass the same array for the same group.
   */
  recordComm(span: CommSpanFields, group: string, seq: number, peers: readonly number[] | undefined): void {
    if (!this.on) return;
    this.comm.push(span, group, seq, peers);
    this.recorded(span.start, span.end);
  }

  /** After a span was kept: posts the batch when it is full or old enough, or makes sure a timer will. */
  private recorded(start: number, end: number): void {
    // The interval counts from the first span, not from the epoch.
    if (this.lastFlushUs === 0) this.lastFlushUs = start;
    if (this.pending >= this.maxBatch || end - this.lastFlushUs >= this.flushIntervalUs) {
      this.flush(end);
    } else if (this.timer === undefined) {
      // A rank that records one span and then computes for seconds still shows it live.
      this.timer = setTimeout(() => this.flush(), this.flushIntervalUs / 1000);
      this.timer.unref?.();
    }
  }

  /**
   * Runs `fn` inside a span named `name` (category compute unless told) and
   * returns what it returns; an async `fn` is timed until its promise settles.
   * A throwing `fn` is still recorded, with `args.error = true`.
   */
  span<T>(name: string, fn: () => T, options?: SpanOptions): T {
    if (!this.on) return fn();
    const cat = options?.cat ?? "compute";
    const start = this.clock();
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.record(name, cat, start, this.clock() - start, { ...options?.args, error: true });
      throw error;
    }
    if (isThenable(result)) {
      return result.then(
        (value) => {
          this.record(name, cat, start, this.clock() - start, options?.args);
          return value;
        },
        (error: unknown) => {
          this.record(name, cat, start, this.clock() - start, { ...options?.args, error: true });
          throw error;
        },
      ) as T;
    }
    this.record(name, cat, start, this.clock() - start, options?.args);
    return result;
  }

  /**
   * Runs a collective inside a comm span carrying `op`, `bytes`, `group` and
   * `seq`, the group's collective counter, which is the same on every member
   * for the same call: the summary and the extension link the call across
   * ranks by it. Counted even while disabled, so it stays aligned when
   * recording is turned on for a later cell.
   */
  collective<T>(op: string, bytes: number, fn: () => Promise<T>, options?: { group?: string; args?: SpanArgs }): Promise<T> {
    const group = options?.group ?? "world";
    const seq = this.seqByGroup.get(group) ?? 0;
    this.seqByGroup.set(group, seq + 1);
    if (!this.on) return fn();
    const args: SpanArgs = { ...options?.args, op, bytes, seq, group };
    return this.span(op, fn, { cat: "comm", args });
  }

  /** Posts what is buffered (nothing when empty). */
  flush(nowUs?: number): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.lastFlushUs = nowUs ?? (this.on ? this.clock() : this.lastFlushUs);
    if (this.pending === 0) return;
    const spans = this.buffer;
    this.buffer = [];
    const comm = this.comm.take();
    this.post(comm === undefined ? { rank: this.rank, spans } : { rank: this.rank, spans, comm });
  }

  /** Spans waiting to be posted. */
  get pending(): number {
    return this.buffer.length + this.comm.length;
  }
}

function isThenable<T>(value: T): value is T & PromiseLike<Awaited<T>> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/** The worker side of the seam: one recorder per rank. */
export function createRankRecorder(options: RankRecorderOptions): SpanRecorder {
  return new SpanRecorder(options);
}
