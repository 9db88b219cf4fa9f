/**
 * Chrome Trace Event export, the format Perfetto and chrome://tracing read:
 * complete events (`ph: "X"`) with one pid per rank and one tid per stream,
 * microsecond times, metadata events naming each process and thread, and flow
 * events (`ph: "s"`/`"t"`/`"f"`) that link one collective's spans across ranks.
 * The per-rank files for Holistic Trace Analysis are hta-trace.ts.
 */
import type { TimelinePayload } from "./payload";
import { streamOf, type SpanArgs, type TimelineSpan } from "./span";

export interface ChromeTraceEvent {
  ph: "X" | "M" | "s" | "t" | "f";
  pid: number;
  tid: number;
  name: string;
  cat?: string;
  /** microseconds */
  ts?: number;
  /** microseconds */
  dur?: number;
  /** flow events: the flow this event belongs to */
  id?: number;
  /** flow end: bind to the enclosing slice ("e") rather than the next one */
  bp?: "e";
  args?: SpanArgs | Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: "ms";
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
 * One flow per collective seen on two or more ranks (linked by `args.group` and `args.seq`,
 * as the summary links them): it starts on the earliest rank's span and steps through the others
 * in time order, so Perfetto draws an arrow from the first arrival to the last.
 */
function collectiveFlows(spans: readonly TimelineSpan[], tids: Map<string, number>): ChromeTraceEvent[] {
  const byCollective = new Map<string, TimelineSpan[]>();
  for (const span of spans) {
    if (span.cat !== "comm" || typeof span.args?.seq !== "number") continue;
    const key = `${String(span.args.group ?? "")}:${span.args.seq}`;
    let list = byCollective.get(key);
    if (list === undefined) byCollective.set(key, (list = []));
    list.push(span);
  }
  const events: ChromeTraceEvent[] = [];
  let id = 0;
  for (const list of byCollective.values()) {
    if (new Set(list.map((s) => s.rank)).size < 2) continue;
    id++;
    const ordered = [...list].sort((a, b) => a.ts - b.ts);
    ordered.forEach((span, i) => {
      const ph = i === 0 ? "s" : i === ordered.length - 1 ? "f" : "t";
      // A flow event binds to the slice that encloses its timestamp on its thread: the span itself.
      const event: ChromeTraceEvent = { ph, id, pid: span.rank, tid: tids.get(streamOf(span)) ?? 0, name: span.name, cat: "collective", ts: span.ts };
      if (ph === "f") event.bp = "e";
      events.push(event);
    });
  }
  return events;
}

/** One trace with every rank (pid = rank). */
export function toChromeTrace(payload: TimelinePayload): ChromeTrace {
  const tids = streamIds(payload);
  const events: ChromeTraceEvent[] = [];
  for (const rank of payload.ranks) {
    events.push({ ph: "M", pid: rank.rank, tid: 0, name: "process_name", args: { name: `rank ${rank.rank} (${rank.host} ${rank.device})${clockNote(rank)}` } });
    events.push({ ph: "M", pid: rank.rank, tid: 0, name: "process_sort_index", args: { sort_index: rank.rank } });
    for (const [stream, tid] of tids) {
      events.push({ ph: "M", pid: rank.rank, tid, name: "thread_name", args: { name: stream } });
    }
  }
  for (const span of payload.spans) {
    const event: ChromeTraceEvent = { ph: "X", pid: span.rank, tid: tids.get(streamOf(span)) ?? 0, name: span.name, cat: span.cat, ts: span.ts, dur: span.dur };
    if (span.args !== undefined) event.args = span.args;
    events.push(event);
  }
  events.push(...collectiveFlows(payload.spans, tids));
  return {
    traceEvents: events,
    displayTimeUnit: "ms",
    metadata: { distributedInfo: { world_size: payload.ranks.length, ranks: payload.ranks, backend: "distlab" }, summary: payload.summary },
  };
}

/** Ranks on other hosts: their host's clock offset, which the times already correct for. */
function clockNote(rank: TimelinePayload["ranks"][number]): string {
  if (rank.clockOffsetUs === undefined) return "";
  return `, host clock ${(rank.clockOffsetUs / 1000).toFixed(3)} ms ± ${((rank.clockUncertaintyUs ?? 0) / 1000).toFixed(3)} ms, aligned`;
}
