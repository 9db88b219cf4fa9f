/**
 * The `application/vnd.distlab.timeline+json` payload, version 1
 * (documented in docs/timeline.md), and its validation.
 */
import { isSpanCategory, type TimelineSpan } from "./span";
import type { TimelineSummary } from "./summary";

export const TIMELINE_MIME_TYPE = "application/vnd.distlab.timeline+json";
export const TIMELINE_PAYLOAD_VERSION = 1;

export interface TimelineRank {
  rank: number;
  host: string;
  device: string;
  /** remote clock minus kernel clock, microseconds (0 for threads) */
  clockOffsetUs?: number;
  /** +- microseconds on this rank's span times after alignment */
  clockUncertaintyUs?: number;
}

export interface TimelinePayload {
  version: 1;
  ranks: TimelineRank[];
  spans: TimelineSpan[];
  summary: TimelineSummary;
  /** true while the cell runs; false in the final bundle */
  live: boolean;
  /** spans left out of this (live) update to bound its size; the final bundle has all */
  omittedSpans?: number;
}

export type PayloadCheck = { ok: true; payload: TimelinePayload } | { ok: false; reason: string };

/** Checks a payload read back from a notebook; the reason is shown to the user. */
export function checkTimelinePayload(value: unknown): PayloadCheck {
  if (typeof value !== "object" || value === null) return { ok: false, reason: "the timeline payload is not a JSON object" };
  const v = value as Record<string, unknown>;
  if (v.version !== TIMELINE_PAYLOAD_VERSION) {
    return { ok: false, reason: `unsupported timeline version ${JSON.stringify(v.version)} (this version reads ${TIMELINE_PAYLOAD_VERSION})` };
  }
  if (!Array.isArray(v.ranks)) return { ok: false, reason: "the timeline payload has no ranks[] array" };
  if (!Array.isArray(v.spans)) return { ok: false, reason: "the timeline payload has no spans[] array" };
  for (let i = 0; i < v.spans.length; i++) {
    const s = v.spans[i] as Record<string, unknown> | null;
    if (
      typeof s !== "object" || s === null || typeof s.rank !== "number" || typeof s.name !== "string" ||
      !isSpanCategory(s.cat) || typeof s.ts !== "number" || typeof s.dur !== "number"
    ) {
      return { ok: false, reason: `span ${i} is malformed (needs rank, name, cat, ts, dur)` };
    }
  }
  if (typeof v.summary !== "object" || v.summary === null) return { ok: false, reason: "the timeline payload has no summary" };
  return { ok: true, payload: value as TimelinePayload };
}
