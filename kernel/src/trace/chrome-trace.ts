/**
 * Chrome Trace Event export, the format Perfetto, chrome://tracing and
 * Holistic Trace Analysis (HTA) read: complete events (`ph: "X"`) with one
 * pid per rank and one tid per stream, microsecond times, plus metadata
 * events naming each process and thread.
 */
import type { TimelinePayload } from "./payload";
import { streamOf, type SpanArgs } from "./span";

export interface ChromeTraceEvent {
  ph: "X" | "M";
  pid: number;
  tid: number;
  name: string;
  cat?: string;
  /** microseconds */
  ts?: number;
  /** microseconds */
  dur?: number;
  args?: SpanArgs | Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: "ms";
  /** HTA reads `distributedInfo` (rank, world_size) to tell the ranks' traces apart. */
  distributedInfo?: { rank: number; world_size: number; backend: string };
  metadata: { distributedInfo: { world_size: number; ranks: TimelinePayload["ranks"]; backend: string }; [key: string]: unknown };
}

/** Stream name -> tid, in order of first appearance; "main" is always tid 0. */
function streamIds(payload: TimelinePayload): Map<string, number> {
  const ids = new Map<string, number>([["main", 0]]);
  for (const span of payload.spans) {
    const stream = streamOf(span);
    if (!ids.has(stream)) ids.set(stream, ids.size);
  }
  return ids;
}

/**
 * One trace with every rank (pid = rank). `onlyRank` keeps one rank's events
 * and fills top-level `distributedInfo`, the one-file-per-rank shape HTA loads.
 */
export function toChromeTrace(payload: TimelinePayload, onlyRank?: number): ChromeTrace {
  const tids = streamIds(payload);
  const events: ChromeTraceEvent[] = [];
  for (const rank of payload.ranks) {
    if (onlyRank !== undefined && rank.rank !== onlyRank) continue;
    events.push({ ph: "M", pid: rank.rank, tid: 0, name: "process_name", args: { name: `rank ${rank.rank} (${rank.host} ${rank.device})` } });
    events.push({ ph: "M", pid: rank.rank, tid: 0, name: "process_sort_index", args: { sort_index: rank.rank } });
    for (const [stream, tid] of tids) {
      events.push({ ph: "M", pid: rank.rank, tid, name: "thread_name", args: { name: stream } });
    }
  }
  for (const span of payload.spans) {
    if (onlyRank !== undefined && span.rank !== onlyRank) continue;
    const event: ChromeTraceEvent = { ph: "X", pid: span.rank, tid: tids.get(streamOf(span)) ?? 0, name: span.name, cat: span.cat, ts: span.ts, dur: span.dur };
    if (span.args !== undefined) event.args = span.args;
    events.push(event);
  }
  const worldSize = payload.ranks.length;
  const trace: ChromeTrace = {
    traceEvents: events,
    displayTimeUnit: "ms",
    metadata: { distributedInfo: { world_size: worldSize, ranks: payload.ranks, backend: "distlab" }, summary: payload.summary },
  };
  if (onlyRank !== undefined) trace.distributedInfo = { rank: onlyRank, world_size: worldSize, backend: "distlab" };
  return trace;
}
