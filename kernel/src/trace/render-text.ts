/**
 * The `text/plain` rendering: the summary as a fixed-width table, for
 * terminals, `jupyter nbconvert --to markdown` and front ends without the extension.
 */
import type { TimelinePayload } from "./payload";

const fmtPct = (x: number): string => `${x.toFixed(1)}%`.padStart(7);

export function formatDuration(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us.toFixed(0)} us`;
}

export function renderTimelineText(payload: TimelinePayload): string {
  const s = payload.summary;
  const lines = [
    `distlab timeline: ${payload.ranks.length} ranks, ${s.spanCount} spans, ${formatDuration(s.durationUs)}${payload.live ? " (running)" : ""}`,
    "rank  compute    comm    data    idle  overlap  waited-for",
  ];
  for (const r of s.ranks) {
    lines.push(
      `${String(r.rank).padStart(4)} ${fmtPct(r.computePct)} ${fmtPct(r.commPct)} ${fmtPct(r.dataPct)} ${fmtPct(r.idlePct)}  ${fmtPct(r.overlapPct)}  ${formatDuration(r.waitedForUs)}`,
    );
  }
  lines.push(`comm overlapped with compute: ${s.overlapPct.toFixed(1)}%`);
  if (s.bubbleFraction !== null) lines.push(`pipeline bubble: ${(100 * s.bubbleFraction).toFixed(1)}%`);
  lines.push(s.stragglerRank === null ? "straggler: none" : `straggler: rank ${s.stragglerRank} (others waited ${formatDuration(s.ranks[s.stragglerRank]?.waitedForUs ?? 0)} for it)`);
  if (payload.omittedSpans) lines.push(`(${payload.omittedSpans} older spans left out of this live update)`);
  return lines.join("\n");
}
