/**
 * The timeline payload (`application/vnd.distlab.timeline+json`, version 1)
 * as the renderer reads it: the kernel's types, its validation for the user's
 * sake (a truncated or newer payload), and formatting. docs/timeline.md is the schema.
 */
// The payload's types are the kernel's own (kernel/src/trace), so writer and reader cannot drift
// apart; type-only imports, erased from the browser bundle.
export type { SpanArgs, SpanCategory, TimelineSpan } from "distlab/dist/trace/span";
export type { RankSummary } from "distlab/dist/trace/summary";
export type { TimelinePayload } from "distlab/dist/trace/payload";

// The category list and colours are values, not types: the kernel's own modules (no imports of
// their own), bundled from its build, so this renderer and the static HTML picture draw alike.
import { SPAN_CATEGORIES } from "distlab/dist/trace/span";
export { SPAN_CATEGORIES };
export { CATEGORY_COLORS } from "distlab/dist/trace/category-colors";

const CATEGORY_SET = new Set<string>(SPAN_CATEGORIES);

/** Why a payload cannot be drawn, in words for the user; null when it can. */
export function payloadProblem(value: unknown): string | null {
  if (typeof value === "string") return "the timeline data is text, not JSON (the output may have been truncated)";
  if (typeof value !== "object" || value === null) return "the timeline data is empty or not a JSON object";
  const v = value as Record<string, unknown>;
  if (v.version !== 1) return `this timeline has version ${JSON.stringify(v.version) ?? "none"}; this extension draws version 1. Update distlab's JupyterLab extension, or re-run the cell.`;
  if (!Array.isArray(v.ranks)) return "the timeline data has no ranks list (it may have been truncated)";
  if (!Array.isArray(v.spans)) return "the timeline data has no spans list (it may have been truncated)";
  const summary = v.summary as Record<string, unknown> | undefined;
  if (typeof summary !== "object" || summary === null || !Array.isArray(summary.ranks)) return "the timeline data has no summary (it may have been truncated)";
  for (let i = 0; i < v.spans.length; i++) {
    const s = v.spans[i] as Record<string, unknown> | null;
    if (typeof s !== "object" || s === null || typeof s.rank !== "number" || typeof s.ts !== "number" || typeof s.dur !== "number" || !CATEGORY_SET.has(s.cat as string)) {
      return `span ${i} of the timeline is malformed (each needs rank, name, cat, ts, dur)`;
    }
  }
  return null;
}

export function formatDuration(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us.toFixed(1)} µs`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(2)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`;
  return `${bytes} B`;
}
