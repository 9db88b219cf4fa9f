/**
 * Plotly traces for the visible window at the current zoom, with level of
 * detail: a span at least MIN_DETAIL_PX wide is drawn (and hovered) on its
 * own; narrower spans are summed into one-pixel bins drawn in the colour of
 * the category that filled most of the bin, with a hover that says what was
 * aggregated. The number of drawn segments is bounded by the plot's width
 * times the rows, whatever the span count; the payload keeps every span.
 * x is in milliseconds from the cell's start.
 *
 * Communication spans of a device mesh (compose(): groups named "dp[..]",
 * "tp[..]", "pp[..]") are drawn in their mesh dimension's colour, each with its
 * own legend entry, read from the span's own `args.group`; other comm spans
 * keep the comm colour.
 */
import type { Data, Shape } from "plotly.js";
import { CATEGORY_COLORS, formatBytes, formatDuration, type SpanCategory, type TimelineSpan } from "./payload";
import type { TimelineRow } from "./rows";
import { MESH_DIMENSIONS, MESH_DIMENSION_COLORS, MESH_DIMENSION_LABELS, meshDimensionOfSpan, type MeshDimension } from "./mesh-dimension";

/** The time window on screen: microseconds, and its width in pixels. */
export interface ViewWindow {
  startUs: number;
  endUs: number;
  widthPx: number;
}

const MIN_DETAIL_PX = 2;
/** Hover points along a long span, so hovering anywhere over it finds it. */
const HOVER_SPACING_PX = 24;
/**
 * Up to this many hover points the traces are SVG (plotly "scatter"), above it WebGL ("scattergl").
 * A WebGL context and its shaders cost hundreds of milliseconds to create (more on the software
 * renderer of a headless browser), which the first draw would pay even for a handful of segments;
 * SVG's cost grows with the points, one DOM node each, so past this many WebGL is cheaper.
 */
const MAX_SVG_HOVER_POINTS = 4000;
/** Collectives linked across ranks are drawn only when this few are in view. */
const MAX_LINKED_COLLECTIVES = 400;
/**
 * Draw order, outermost first: comm over the compute span that awaits it, and
 * idle (the wait inside a collective for its last arrival) over that comm span.
 */
const DRAW_ORDER: SpanCategory[] = ["compute", "data", "other", "comm", "idle"];

/** What a segment is drawn as: its category, or for a mesh's comm span its mesh dimension. */
export type DrawClass = SpanCategory | `comm ${MeshDimension}`;
/** Draw order, as DRAW_ORDER, the mesh dimensions' comm beside the other comm. */
const DRAW_CLASSES: DrawClass[] = DRAW_ORDER.flatMap((cat): DrawClass[] => (cat === "comm" ? ["comm", ...MESH_DIMENSIONS.map((d) => `comm ${d}` as const)] : [cat]));
/** A draw class's index in DRAW_CLASSES (the bins' per-class time arrays use it). */
const DRAW_CLASS_INDEX = new Map<DrawClass, number>(DRAW_CLASSES.map((c, i) => [c, i]));

export function drawClassOf(span: TimelineSpan): DrawClass {
  const dimension = meshDimensionOfSpan(span);
  return dimension === undefined ? span.cat : `comm ${dimension}`;
}

export function drawClassColor(cls: DrawClass): string {
  return cls.startsWith("comm ") ? MESH_DIMENSION_COLORS[cls.slice(5) as MeshDimension] : CATEGORY_COLORS[cls as SpanCategory];
}

function drawClassLabel(cls: DrawClass): string {
  return cls.startsWith("comm ") ? MESH_DIMENSION_LABELS[cls.slice(5) as MeshDimension] : cls;
}

interface CategoryBuffers {
  lineX: Array<number | null>;
  lineY: Array<number | null>;
  hoverX: number[];
  hoverY: number[];
  hoverText: string[];
}

/** `clock`: the offset of the span's host's clock (TimelineRow.clock), for ranks on other hosts. */
export function spanHoverText(span: TimelineSpan, clock?: string): string {
  const lines = [`<b>${escapeText(span.name)}</b>`, `rank ${span.rank} · ${span.cat}`, `duration ${formatDuration(span.dur)}`, `start ${formatDuration(span.ts)}`];
  if (clock !== undefined) lines.push(`host clock ${clock} (aligned to the kernel's)`);
  const args = span.args ?? {};
  if (typeof args.op === "string") lines.push(`op ${escapeText(args.op)}${typeof args.algorithm === "string" ? ` (${escapeText(args.algorithm)})` : ""}`);
  if (typeof args.bytes === "number") {
    lines.push(`bytes ${formatBytes(args.bytes)}`);
    // bytes per microsecond = MB/s; shown as GB/s
    if (span.dur > 0) lines.push(`bandwidth ${(args.bytes / span.dur / 1000).toFixed(3)} GB/s`);
  }
  if (typeof args.step === "number") lines.push(`step ${args.step}`);
  if (typeof args.stage === "number") lines.push(`stage ${args.stage}${typeof args.microbatch === "number" ? `, micro-batch ${args.microbatch}` : ""}`);
  return lines.join("<br>");
}

function escapeText(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

/** Index of the first span that may end after `startUs` (spans sorted by start; long spans are rare). */
function firstVisible(spans: TimelineSpan[], startUs: number, maxDurUs: number): number {
  let lo = 0;
  let hi = spans.length;
  const bound = startUs - maxDurUs;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid].ts < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** plotly's trace type: SVG for few points, WebGL for many (MAX_SVG_HOVER_POINTS). */
export type SpanTraceType = "scatter" | "scattergl";

export function buildSpanTraces(rows: TimelineRow[], view: ViewWindow, rowHeightPx: number): { traces: Data[]; drawnSegments: number; traceType: SpanTraceType } {
  const binUs = Math.max((view.endUs - view.startUs) / Math.max(view.widthPx, 1), 1e-9);
  const buffers = new Map<DrawClass, CategoryBuffers>(DRAW_CLASSES.map((c) => [c, { lineX: [], lineY: [], hoverX: [], hoverY: [], hoverText: [] }]));
  let drawnSegments = 0;
  const addSegment = (cat: DrawClass, y: number, fromUs: number, toUs: number, text: string): void => {
    const b = buffers.get(cat)!;
    b.lineX.push(fromUs / 1000, toUs / 1000, null);
    b.lineY.push(y, y, null);
    const from = Math.max(fromUs, view.startUs);
    const to = Math.min(toUs, view.endUs);
    const step = HOVER_SPACING_PX * binUs;
    for (let t = from + Math.min(step, (to - from) / 2); t <= to; t += step) {
      b.hoverX.push(t / 1000);
      b.hoverY.push(y);
      b.hoverText.push(text);
    }
    drawnSegments++;
  };
  for (const row of rows) {
    let maxDur = 0;
    for (const s of row.spans) if (s.dur > maxDur) maxDur = s.dur;
    // Per one-pixel bin: microseconds of each category and how many spans fell in it.
    const bins = new Map<number, { us: Float64Array; count: number }>();
    for (let i = firstVisible(row.spans, view.startUs, maxDur); i < row.spans.length; i++) {
      const span = row.spans[i];
      if (span.ts > view.endUs) break;
      if (span.ts + span.dur < view.startUs) continue;
      if (span.dur >= MIN_DETAIL_PX * binUs) {
        addSegment(drawClassOf(span), row.y, span.ts, span.ts + span.dur, spanHoverText(span, row.clock));
        continue;
      }
      const bin = Math.floor((span.ts + span.dur / 2 - view.startUs) / binUs);
      let cell = bins.get(bin);
      if (cell === undefined) bins.set(bin, (cell = { us: new Float64Array(DRAW_CLASSES.length), count: 0 }));
      cell.us[DRAW_CLASS_INDEX.get(drawClassOf(span))!] += span.dur;
      cell.count++;
    }
    // Neighbouring bins led by the same category become one segment with one hover for the run:
    // at full zoom most of a row is such runs, and Plotly's cost grows with segments and hover points.
    let run: { fromBin: number; toBin: number; best: number; us: Float64Array; count: number } | undefined;
    const flush = (): void => {
      if (run === undefined) return;
      let total = 0;
      for (let c = 0; c < run.us.length; c++) total += run.us[c];
      const shares: string[] = [];
      for (let c = 0; c < run.us.length; c++) if (run.us[c] > 0) shares.push(`${DRAW_CLASSES[c]} ${((100 * run.us[c]) / Math.max(total, 1e-9)).toFixed(0)}%`);
      const text = `<b>${run.count} short spans</b> (zoom in to see each)<br>${row.label}<br>${shares.join(", ")}<br>busy ${formatDuration(total)}`;
      addSegment(DRAW_CLASSES[run.best]!, row.y, view.startUs + run.fromBin * binUs, view.startUs + (run.toBin + 1) * binUs, text);
      run = undefined;
    };
    for (const bin of [...bins.keys()].sort((a, b) => a - b)) {
      const cell = bins.get(bin)!;
      let best = 0;
      for (let c = 1; c < cell.us.length; c++) if (cell.us[c] > cell.us[best]) best = c;
      if (run !== undefined && (run.best !== best || run.toBin + 1 !== bin)) flush();
      if (run === undefined) run = { fromBin: bin, toBin: bin, best, us: new Float64Array(cell.us.length), count: 0 };
      run.toBin = bin;
      for (let c = 0; c < cell.us.length; c++) run.us[c] += cell.us[c];
      run.count += cell.count;
    }
    flush();
  }
  let hoverPoints = 0;
  for (const b of buffers.values()) hoverPoints += b.hoverX.length;
  const traceType: SpanTraceType = hoverPoints <= MAX_SVG_HOVER_POINTS ? "scatter" : "scattergl";
  const traces: Data[] = [];
  for (const cls of DRAW_CLASSES) {
    const b = buffers.get(cls)!;
    // A mesh dimension gets its legend entry only where the view holds its spans (most runs have no mesh).
    if (cls.startsWith("comm ") && b.lineX.length === 0) continue;
    const color = drawClassColor(cls);
    const name = drawClassLabel(cls);
    traces.push({
      type: traceType, mode: "lines", name, legendgroup: cls, x: b.lineX, y: b.lineY,
      line: { color, width: Math.max(2, rowHeightPx * 0.6) }, hoverinfo: "skip", connectgaps: false,
    });
    traces.push({
      type: traceType, mode: "markers", name, legendgroup: cls, showlegend: false, x: b.hoverX, y: b.hoverY,
      hovertext: b.hoverText, hoverinfo: "text", marker: { size: Math.max(4, rowHeightPx * 0.6), color: "rgba(0,0,0,0)" },
      hoverlabel: { bgcolor: color },
    });
  }
  return { traces, drawnSegments, traceType };
}

/**
 * Each collective (comm spans sharing `args.group` and `args.seq`) linked across its ranks'
 * rows at their arrival times; the last to arrive is marked, since the others
 * waited for it.
 */
export function buildCollectiveLinks(rows: TimelineRow[], view: ViewWindow, traceType: SpanTraceType = "scattergl"): Data[] {
  const groups = new Map<string, Array<{ span: TimelineSpan; y: number }>>();
  for (const row of rows) {
    for (const span of row.spans) {
      if (span.cat !== "comm" || typeof span.args?.seq !== "number") continue;
      if (span.ts + span.dur < view.startUs || span.ts > view.endUs) continue;
      const key = `${String(span.args.group ?? "")}#${span.args.seq}`;
      let group = groups.get(key);
      if (group === undefined) {
        // Too many to link legibly: stop here rather than group every comm span in view.
        if (groups.size === MAX_LINKED_COLLECTIVES) return [];
        groups.set(key, (group = []));
      }
      group.push({ span, y: row.y });
    }
  }
  if (groups.size === 0) return [];
  const linkX: Array<number | null> = [];
  const linkY: Array<number | null> = [];
  const lateX: number[] = [];
  const lateY: number[] = [];
  const lateText: string[] = [];
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    group.sort((a, b) => a.y - b.y);
    for (const { span, y } of group) {
      linkX.push(span.ts / 1000);
      linkY.push(y);
    }
    linkX.push(null);
    linkY.push(null);
    const first = Math.min(...group.map((g) => g.span.ts));
    const last = group.reduce((a, b) => (b.span.ts > a.span.ts ? b : a));
    lateX.push(last.span.ts / 1000);
    lateY.push(last.y);
    lateText.push(`<b>${escapeText(last.span.name)}</b> #${String(last.span.args?.seq)}<br>rank ${last.span.rank} arrived last, ${formatDuration(last.span.ts - first)} after the first`);
  }
  return [
    { type: traceType, mode: "lines", name: "same collective", x: linkX, y: linkY, line: { color: "rgba(128,128,128,0.7)", width: 1 }, hoverinfo: "skip" },
    { type: traceType, mode: "markers", name: "arrived last", x: lateX, y: lateY, hovertext: lateText, hoverinfo: "text", marker: { symbol: "x", size: 9, color: "#e45756" } },
  ];
}

/** Each step's first start (microseconds) per rows array: computed on the first draw, reused on zoom and pan. */
const stepStartsOf = new WeakMap<TimelineRow[], number[]>();

function stepStarts(rows: TimelineRow[]): number[] {
  const cached = stepStartsOf.get(rows);
  if (cached !== undefined) return cached;
  const starts = new Map<number, number>();
  for (const row of rows) {
    for (let i = 0; i < row.spans.length; i++) {
      const span = row.spans[i];
      const step = span.args?.step;
      if (typeof step !== "number") continue;
      const prev = starts.get(step);
      if (prev === undefined || span.ts < prev) starts.set(step, span.ts);
    }
  }
  const list = [...starts.values()];
  stepStartsOf.set(rows, list);
  return list;
}

/** Dashed vertical lines where each training step starts (spans with `args.step`). */
export function stepBoundaryShapes(rows: TimelineRow[], view: ViewWindow, lineColor: string): Partial<Shape>[] {
  const starts = stepStarts(rows);
  const visible = starts.filter((t) => t >= view.startUs && t <= view.endUs);
  if (visible.length > 200) return [];
  return visible.map((t) => ({ type: "line", xref: "x", yref: "paper", x0: t / 1000, x1: t / 1000, y0: 0, y1: 1, line: { color: lineColor, width: 1, dash: "dot" } }));
}
