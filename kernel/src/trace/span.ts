/**
 * The span model shared by the recorder (in every rank), the aggregator (in
 * the kernel) and the payload sent to the frontend.
 *
 * Times are microseconds. A `RawSpan` carries the rank's own clock (epoch
 * microseconds, see clock.ts); a `TimelineSpan` carries microseconds from the
 * cell's start on the kernel's clock.
 */

/** What a rank was doing. `idle` is time blocked waiting for peers, measured. */
export type SpanCategory = "compute" | "comm" | "data" | "idle" | "other";

export const SPAN_CATEGORIES: readonly SpanCategory[] = ["compute", "comm", "data", "idle", "other"];

/**
 * Optional details. Collectives fill `op`, `bytes`, `algorithm`, `peers`,
 * `group` and `seq` (the group's collective counter, equal on every rank for
 * the same call, which links one collective across ranks). Pipeline techniques fill
 * `stage` and `microbatch`; training loops mark steps with `step`. `stream`
 * names a concurrent lane of the rank ("main" when absent), e.g. "comm" for
 * an allreduce that overlaps backward.
 */
export interface SpanArgs {
  op?: string;
  bytes?: number;
  algorithm?: string;
  peers?: number[];
  seq?: number;
  /** the process group a collective ran in ("world" unless a sub-group) */
  group?: string;
  stage?: number;
  microbatch?: number;
  step?: number;
  stream?: string;
  [key: string]: unknown;
}

/** A span as a rank records it: start on the rank's epoch clock, microseconds. */
export interface RawSpan {
  name: string;
  cat: SpanCategory;
  /** microseconds since the Unix epoch on the rank's clock */
  start: number;
  /** microseconds */
  dur: number;
  args?: SpanArgs;
}

/** A span on the merged timeline (the payload's `spans[]`). */
export interface TimelineSpan {
  rank: number;
  name: string;
  cat: SpanCategory;
  /** microseconds from the cell's start, kernel clock */
  ts: number;
  /** microseconds */
  dur: number;
  args?: SpanArgs;
}

export function isSpanCategory(value: unknown): value is SpanCategory {
  return typeof value === "string" && (SPAN_CATEGORIES as readonly string[]).includes(value);
}

/**
 * The stream of `dist.step(n, fn)` spans ("step n", `args.step` = n): they mark a training
 * step's bounds on a row of their own and are left out of the category time, since the
 * work inside a step is recorded by its own spans. Exports turn them into `ProfilerStep#n`.
 */
export const STEP_STREAM = "steps";

/** The lane a span is drawn on and measured in: concurrent lanes may overlap. */
export function streamOf(span: { args?: SpanArgs }): string {
  const stream = span.args?.stream;
  return typeof stream === "string" && stream.length > 0 ? stream : "main";
}
