/**
 * Rows of the timeline: one per rank, and a sub-row for each further stream
 * of that rank (a comm stream overlapping compute), rank 0 on top.
 */
import type { TimelinePayload, TimelineSpan } from "./payload";

export interface TimelineRow {
  rank: number;
  stream: string;
  /** the y coordinate of the row's centre (row index) */
  y: number;
  label: string;
  /** the row's spans sorted by start */
  spans: TimelineSpan[];
  /** for a rank on another host: its host's clock offset, "+250.031 ms ± 0.040 ms" (its spans are already moved onto the kernel's clock) */
  clock?: string;
}

export const streamOf = (span: TimelineSpan): string => (typeof span.args?.stream === "string" && span.args.stream !== "" ? span.args.stream : "main");

export function buildRows(payload: TimelinePayload): TimelineRow[] {
  const byKey = new Map<string, TimelineSpan[]>();
  for (const span of payload.spans) {
    const key = `${span.rank}\u0000${streamOf(span)}`;
    let list = byKey.get(key);
    if (list === undefined) byKey.set(key, (list = []));
    list.push(span);
  }
  const rankIds = [...new Set([...payload.ranks.map((r) => r.rank), ...payload.spans.map((s) => s.rank)])].sort((a, b) => a - b);
  const rows: TimelineRow[] = [];
  const clockOf = new Map(payload.ranks.flatMap((r) => (r.clockOffsetUs === undefined ? [] : [[r.rank, clockText(r.clockOffsetUs, r.clockUncertaintyUs ?? 0)] as const])));
  for (const rank of rankIds) {
    const clock = clockOf.get(rank);
    const streams = [...byKey.keys()].filter((k) => k.startsWith(`${rank}\u0000`)).map((k) => k.split("\u0000")[1]);
    const ordered = ["main", ...streams.filter((s) => s !== "main").sort()];
    for (const stream of ordered) {
      const spans = (byKey.get(`${rank}\u0000${stream}`) ?? []).slice().sort((a, b) => a.ts - b.ts);
      rows.push({ rank, stream, y: rows.length, label: stream === "main" ? `rank ${rank}` : `rank ${rank} · ${stream}`, spans, ...(clock === undefined ? {} : { clock }) });
    }
  }
  return rows;
}

/** Microseconds of offset and uncertainty as the hover shows them. */
function clockText(offsetUs: number, uncertaintyUs: number): string {
  return `${offsetUs >= 0 ? "+" : "-"}${(Math.abs(offsetUs) / 1000).toFixed(3)} ms ± ${(uncertaintyUs / 1000).toFixed(3)} ms`;
}
