/**
 * What a rank was doing at each instant, per category.
 *
 * Spans on one stream nest (a user's `forward` span contains the allreduce it
 * awaited), so at each instant only the innermost span counts: the one that
 * started last. Spans on different streams are concurrent, so a rank can be in
 * compute and comm at once; that is the overlap the summary reports.
 */
import { unionOf, mergeLists, type IntervalList } from "./intervals";
import { STEP_STREAM, streamOf, type SpanCategory, type TimelineSpan } from "./span";

export type CategoryIntervals = Record<SpanCategory, IntervalList>;

function emptyCategoryIntervals(): CategoryIntervals {
  return { compute: [], comm: [], data: [], idle: [], other: [] };
}

/** A stretch of time owned by one span: the innermost open span on its stream. */
export interface SelfTimePiece {
  span: TimelineSpan;
  /** microseconds, same clock as the spans */
  start: number;
  end: number;
}

/**
 * The innermost-span pieces of one stream, in time order: each instant belongs to
 * the span that started last among those still open. The pieces of one span may be
 * several (its children cut it), and no two pieces overlap.
 */
export function selfTimePieces(spans: readonly TimelineSpan[]): SelfTimePiece[] {
  const pieces: SelfTimePiece[] = [];
  const sorted = [...spans].sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  // Stack of open spans, outermost first; each open span owns time until a child starts.
  const stack: Array<{ span: TimelineSpan; end: number }> = [];
  let cursor = sorted.length > 0 ? sorted[0].ts : 0;
  const emitUntil = (limit: number): void => {
    // Close spans that end before `limit`, giving each its time up to its end.
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const until = Math.min(top.end, limit);
      if (until > cursor) {
        pieces.push({ span: top.span, start: cursor, end: until });
        cursor = until;
      }
      if (top.end <= limit) stack.pop();
      else break;
    }
    if (cursor < limit) cursor = limit;
  };
  for (const span of sorted) {
    emitUntil(span.ts);
    stack.push({ span, end: span.ts + span.dur });
  }
  emitUntil(Number.POSITIVE_INFINITY);
  return pieces;
}

/** Innermost-span time of one stream, per category, as disjoint interval lists. */
export function streamSelfTime(spans: readonly TimelineSpan[]): CategoryIntervals {
  const pairs: Record<SpanCategory, Array<[number, number]>> = { compute: [], comm: [], data: [], idle: [], other: [] };
  for (const piece of selfTimePieces(spans)) pairs[piece.span.cat].push([piece.start, piece.end]);
  const out = emptyCategoryIntervals();
  for (const cat of Object.keys(pairs) as SpanCategory[]) out[cat] = unionOf(pairs[cat]);
  return out;
}

/** A rank's spans by stream, in order of first appearance; step markers (dist.step) bound work and are left out. */
export function workByStream(spans: readonly TimelineSpan[]): Map<string, TimelineSpan[]> {
  const byStream = new Map<string, TimelineSpan[]>();
  for (const span of spans) {
    const stream = streamOf(span);
    if (stream === STEP_STREAM) continue;
    let list = byStream.get(stream);
    if (list === undefined) byStream.set(stream, (list = []));
    list.push(span);
  }
  return byStream;
}

/** A rank's time per category, all its streams together (overlaps kept). */
export function rankCategoryTime(spans: readonly TimelineSpan[]): CategoryIntervals {
  let out = emptyCategoryIntervals();
  for (const list of workByStream(spans).values()) {
    const self = streamSelfTime(list);
    out = {
      compute: mergeLists(out.compute, self.compute),
      comm: mergeLists(out.comm, self.comm),
      data: mergeLists(out.data, self.data),
      idle: mergeLists(out.idle, self.idle),
      other: mergeLists(out.other, self.other),
    };
  }
  return out;
}
