/**
 * The display bundle of a timeline: the payload for the extension, and the
 * static HTML and text renderings for everything else.
 */
import type { MimeBundle } from "../protocol/backend";
import { TIMELINE_MIME_TYPE, type TimelinePayload } from "./payload";
import { renderTimelineHtml } from "./render-html";
import { renderTimelineText } from "./render-text";

export function timelineBundle(payload: TimelinePayload): MimeBundle {
  return {
    [TIMELINE_MIME_TYPE]: payload,
    "text/html": renderTimelineHtml(payload),
    "text/plain": renderTimelineText(payload),
  };
}

/** What a live update carries: no static picture, which only the saved notebook needs. */
export function liveBundle(payload: TimelinePayload): MimeBundle {
  return { [TIMELINE_MIME_TYPE]: payload, "text/plain": renderTimelineText(payload) };
}
