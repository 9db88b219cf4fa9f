/**
 * Recording, aligning, summarising, drawing and exporting per-rank timelines.
 * Worker side: createRankRecorder. Kernel side: TimelineSession (live
 * display), timelineBundle (re-show), exportChromeTrace (file export).
 */
export * from "./span";
export * from "./clock";
export * from "./recorder";
export * from "./comm-span-columns";
export * from "./intervals";
export * from "./summary";
export * from "./payload";
export * from "./aggregator";
export * from "./arrival-waits";
export * from "./bundle";
export * from "./session";
export * from "./chrome-trace";
export * from "./export-file";
export * from "./hta-trace";
export { renderTimelineHtml } from "./render-html";
export { CATEGORY_COLORS } from "./category-colors";
export { renderTimelineText, formatDuration } from "./render-text";
export { rankCategoryTime, selfTimePieces, streamSelfTime, type SelfTimePiece } from "./self-time";
