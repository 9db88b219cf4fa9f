/**
 * The summary beside the plot: per-rank compute/comm/data/idle percentages,
 * comm/compute overlap, pipeline bubble and straggler.
 */
import { formatDuration, type TimelinePayload } from "./payload";

function element<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className !== undefined) node.className = className;
  return node;
}

export function renderSummaryTable(payload: TimelinePayload): HTMLElement {
  const s = payload.summary;
  const root = element("div", undefined, "jp-DistlabTimeline-summary");
  const table = element("table");
  const head = element("tr");
  for (const title of ["rank", "compute", "comm", "data", "idle", "overlap", "waited for"]) head.appendChild(element("th", title));
  table.appendChild(element("thead")).appendChild(head);
  const body = table.appendChild(element("tbody"));
  for (const r of s.ranks) {
    const row = element("tr", undefined, r.rank === s.stragglerRank ? "jp-DistlabTimeline-straggler" : undefined);
    row.appendChild(element("td", String(r.rank)));
    for (const value of [r.computePct, r.commPct, r.dataPct, r.idlePct, r.overlapPct]) row.appendChild(element("td", `${value.toFixed(1)}%`));
    row.appendChild(element("td", formatDuration(r.waitedForUs)));
    body.appendChild(row);
  }
  root.appendChild(table);
  const facts = element("ul");
  facts.appendChild(element("li", `comm overlapped with compute: ${s.overlapPct.toFixed(1)}%`));
  if (s.bubbleFraction !== null) facts.appendChild(element("li", `pipeline bubble: ${(100 * s.bubbleFraction).toFixed(1)}%`));
  facts.appendChild(element("li", s.stragglerRank === null ? "straggler: none" : `straggler: rank ${s.stragglerRank}`));
  facts.appendChild(element("li", `${s.spanCount.toLocaleString()} spans, ${s.collectives} collectives, ${formatDuration(s.durationUs)}${payload.live ? " (running)" : ""}`));
  if (payload.omittedSpans) facts.appendChild(element("li", `${payload.omittedSpans.toLocaleString()} older spans arrive with the final update`));
  root.appendChild(facts);
  return root;
}
