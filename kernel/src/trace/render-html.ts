/**
 * The `text/html` rendering: a static SVG picture of the timeline and the
 * summary table, so a saved notebook reads on GitHub and nbviewer without
 * the extension. The picture is drawn at one pixel per time bin: each bin
 * shows the category that filled most of it, so its size does not grow with
 * the span count.
 */
import { CATEGORY_COLORS } from "./category-colors";
import type { TimelinePayload } from "./payload";
import { formatDuration } from "./render-text";
import { rankCategoryTime } from "./self-time";
import { SPAN_CATEGORIES, type SpanCategory, type TimelineSpan } from "./span";


const WIDTH_PX = 800;
const LABEL_PX = 56;
const ROW_PX = 22;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Per rank, per pixel bin: microseconds of each category (index =
 * SPAN_CATEGORIES order), counting the innermost span of each stream as the
 * summary does, so a comm span nested in a compute span (the cell's own span,
 * a user's `forward`) shows as comm.
 */
function binCategoryTime(payload: TimelinePayload, bins: number, durationUs: number): Float64Array[] {
  const binUs = durationUs / bins;
  const byRank = new Map<number, TimelineSpan[]>(payload.ranks.map((r) => [r.rank, []]));
  for (const span of payload.spans) byRank.get(span.rank)?.push(span);
  return payload.ranks.map((rank) => {
    const grid = new Float64Array(bins * SPAN_CATEGORIES.length);
    const time = rankCategoryTime(byRank.get(rank.rank)!);
    SPAN_CATEGORIES.forEach((cat, catIndex) => {
      const list = time[cat];
      for (let i = 0; i < list.length; i += 2) {
        const [start, end] = [list[i], list[i + 1]];
        const firstBin = Math.max(0, Math.floor(start / binUs));
        const lastBin = Math.min(bins - 1, Math.floor(end / binUs));
        for (let b = firstBin; b <= lastBin; b++) {
          const covered = Math.min(end, (b + 1) * binUs) - Math.max(start, b * binUs);
          if (covered > 0) grid[b * SPAN_CATEGORIES.length + catIndex] += covered;
        }
      }
    });
    return grid;
  });
}

function svgPicture(payload: TimelinePayload): string {
  const durationUs = Math.max(payload.summary.durationUs, 1);
  const bins = WIDTH_PX - LABEL_PX;
  const grids = binCategoryTime(payload, bins, durationUs);
  const height = payload.ranks.length * ROW_PX + 20;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH_PX}" height="${height}" viewBox="0 0 ${WIDTH_PX} ${height}" font-family="sans-serif" font-size="11" role="img" aria-label="distlab timeline">`,
  ];
  payload.ranks.forEach((rank, row) => {
    const y = row * ROW_PX;
    parts.push(`<text x="0" y="${y + 15}" fill="currentColor">rank ${rank.rank}</text>`);
    const grid = grids[row];
    let runStart = 0;
    let runCat = -1;
    const flush = (endBin: number): void => {
      if (runCat < 0) return;
      const cat = SPAN_CATEGORIES[runCat];
      parts.push(`<rect x="${LABEL_PX + runStart}" y="${y + 3}" width="${endBin - runStart}" height="${ROW_PX - 6}" fill="${CATEGORY_COLORS[cat]}"><title>${cat}</title></rect>`);
    };
    for (let b = 0; b < bins; b++) {
      let best = -1;
      let bestUs = 0;
      for (let c = 0; c < SPAN_CATEGORIES.length; c++) {
        const us = grid[b * SPAN_CATEGORIES.length + c];
        if (us > bestUs) [best, bestUs] = [c, us];
      }
      if (best !== runCat) {
        flush(b);
        runStart = b;
        runCat = best;
      }
    }
    flush(bins);
  });
  const axisY = payload.ranks.length * ROW_PX + 14;
  parts.push(`<text x="${LABEL_PX}" y="${axisY}" fill="currentColor">0</text>`);
  parts.push(`<text x="${WIDTH_PX}" y="${axisY}" text-anchor="end" fill="currentColor">${escapeHtml(formatDuration(durationUs))}</text>`);
  parts.push("</svg>");
  return parts.join("");
}

function legend(): string {
  return SPAN_CATEGORIES.map(
    (cat) => `<span style="display:inline-block;width:10px;height:10px;background:${CATEGORY_COLORS[cat]};margin:0 4px 0 10px"></span>${cat}`,
  ).join("");
}

function summaryTable(payload: TimelinePayload): string {
  const s = payload.summary;
  const cell = (x: number): string => `<td style="text-align:right">${x.toFixed(1)}%</td>`;
  const rows = s.ranks
    .map((r) => `<tr><td>${r.rank}</td>${cell(r.computePct)}${cell(r.commPct)}${cell(r.dataPct)}${cell(r.idlePct)}${cell(r.overlapPct)}<td style="text-align:right">${escapeHtml(formatDuration(r.waitedForUs))}</td></tr>`)
    .join("");
  const facts = [
    `comm overlapped with compute: ${s.overlapPct.toFixed(1)}%`,
    s.bubbleFraction === null ? "" : `pipeline bubble: ${(100 * s.bubbleFraction).toFixed(1)}%`,
    s.stragglerRank === null ? "straggler: none" : `straggler: rank ${s.stragglerRank}`,
  ].filter((x) => x.length > 0);
  return (
    `<table class="distlab-timeline-summary"><thead><tr><th>rank</th><th>compute</th><th>comm</th><th>data</th><th>idle</th><th>overlap</th><th>waited for</th></tr></thead><tbody>${rows}</tbody></table>` +
    `<p>${facts.map(escapeHtml).join(" &middot; ")}</p>`
  );
}

export function renderTimelineHtml(payload: TimelinePayload): string {
  const s = payload.summary;
  const title = `distlab timeline: ${payload.ranks.length} ranks, ${s.spanCount} spans, ${formatDuration(s.durationUs)}${payload.live ? " (running)" : ""}`;
  return `<div class="distlab-timeline-static"><p><b>${escapeHtml(title)}</b></p>${svgPicture(payload)}<div>${legend()}</div>${summaryTable(payload)}</div>`;
}
