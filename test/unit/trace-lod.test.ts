import { test } from "node:test";
import assert from "node:assert/strict";
import { buildRows } from "../../extension/src/rows";
import { buildSpanTraces, buildCollectiveLinks, spanHoverText, stepBoundaryShapes } from "../../extension/src/traces";
import { payloadProblem, type TimelinePayload, type TimelineSpan } from "../../extension/src/payload";

function payloadOf(spans: TimelineSpan[], rankCount: number): TimelinePayload {
  const ranks = Array.from({ length: rankCount }, (_, rank) => ({ rank, host: "h", device: "cpu" }));
  const durationUs = spans.reduce((m, s) => Math.max(m, s.ts + s.dur), 0);
  return { version: 1, ranks, spans, live: false, summary: { durationUs, spanCount: spans.length, ranks: [], overlapPct: 0, bubbleFraction: null, stragglerRank: null, collectives: 0 } };
}

function manySpans(perRank: number, rankCount: number): TimelineSpan[] {
  const spans: TimelineSpan[] = [];
  for (let rank = 0; rank < rankCount; rank++) {
    for (let i = 0; i < perRank; i++) spans.push({ rank, name: i % 2 ? "allReduce" : "fwd", cat: i % 2 ? "comm" : "compute", ts: i * 10, dur: 9, args: i % 2 ? { seq: i } : undefined });
  }
  return spans;
}

const lineSegments = (traces: ReturnType<typeof buildSpanTraces>["traces"]): number =>
  traces.filter((t) => (t as { mode?: string }).mode === "lines").reduce((n, t) => n + ((t as { x: unknown[] }).x.length / 3), 0);

test("rows: one per rank, comm stream as a sub-row under its rank", () => {
  const rows = buildRows(payloadOf([
    { rank: 1, name: "a", cat: "compute", ts: 5, dur: 1 }, { rank: 0, name: "b", cat: "comm", ts: 0, dur: 1, args: { stream: "comm" } },
    { rank: 0, name: "c", cat: "compute", ts: 0, dur: 1 },
  ], 2));
  assert.deepEqual(rows.map((r) => [r.label, r.y]), [["rank 0", 0], ["rank 0 · comm", 1], ["rank 1", 2]]);
});

test("100,000 spans at full zoom draw at most one segment per pixel per row", () => {
  const rows = buildRows(payloadOf(manySpans(25_000, 4), 4));
  const { traces, drawnSegments } = buildSpanTraces(rows, { startUs: 0, endUs: 250_000, widthPx: 800 }, 26);
  assert.ok(drawnSegments <= 4 * 801, `${drawnSegments} segments`);
  assert.equal(lineSegments(traces), drawnSegments);
  const hover = traces.find((t) => (t as { mode?: string }).mode === "markers" && ((t as { hovertext: string[] }).hovertext?.length ?? 0) > 0) as { hovertext: string[] };
  assert.match(hover.hovertext[0], /short spans.*zoom in/);
});

test("neighbouring bins led by one category are one segment whose hover sums the run", () => {
  // Each 10 us holds a 9 us compute span, then a 4 us comm span: compute leads every bin.
  const spans: TimelineSpan[] = [];
  for (let i = 0; i < 25_000; i++) {
    spans.push({ rank: 0, name: "fwd", cat: "compute", ts: i * 20, dur: 9 }, { rank: 0, name: "allReduce", cat: "comm", ts: i * 20 + 10, dur: 4 });
  }
  const rows = buildRows(payloadOf(spans, 1));
  const { traces, drawnSegments, traceType } = buildSpanTraces(rows, { startUs: 0, endUs: 500_000, widthPx: 800 }, 26);
  assert.equal(drawnSegments, 1, "one run of compute-led bins across the whole row");
  assert.equal(traceType, "scatter", "a few hover points draw as SVG");
  const hover = traces.find((t) => (t as { name?: string; mode?: string }).name === "compute" && (t as { mode?: string }).mode === "markers") as { hovertext: string[] };
  assert.match(hover.hovertext[0], /<b>50000 short spans<\/b>.*compute 69%, comm 31%/);
});

test("thousands of spans drawn one by one switch the traces to WebGL", () => {
  const rows = buildRows(payloadOf(manySpans(25_000, 4), 4));
  const { traces, traceType } = buildSpanTraces(rows, { startUs: 0, endUs: 250_000, widthPx: 250_000 }, 26);
  assert.equal(traceType, "scattergl");
  assert.ok(traces.every((t) => t.type === "scattergl"));
});

test("zoomed in, each span is drawn on its own with its own hover", () => {
  const rows = buildRows(payloadOf(manySpans(25_000, 4), 4));
  const { traces, drawnSegments } = buildSpanTraces(rows, { startUs: 1_000, endUs: 1_400, widthPx: 800 }, 26);
  assert.equal(drawnSegments, 4 * 41, "40 spans of 10 us in a 400 us window, plus the one straddling its start, per rank");
  const commHover = traces.find((t) => (t as { name?: string; mode?: string }).name === "comm" && (t as { mode?: string }).mode === "markers") as { hovertext: string[] };
  assert.match(commHover.hovertext[0], /<b>allReduce<\/b>/);
});

test("hover names op, bytes, duration and bandwidth", () => {
  const text = spanHoverText({ rank: 2, name: "allReduce", cat: "comm", ts: 0, dur: 1000, args: { op: "allReduce", algorithm: "ring", bytes: 4 << 20 } });
  assert.match(text, /op allReduce \(ring\)/);
  assert.match(text, /bytes 4\.00 MiB/);
  assert.match(text, /duration 1\.00 ms/);
  assert.match(text, /bandwidth 4\.194 GB\/s/);
});

test("collectives are linked across ranks and the last arrival is marked", () => {
  const rows = buildRows(payloadOf([
    { rank: 0, name: "allReduce", cat: "comm", ts: 10, dur: 5, args: { seq: 0 } },
    { rank: 1, name: "allReduce", cat: "comm", ts: 40, dur: 5, args: { seq: 0 } },
  ], 2));
  const [links, late] = buildCollectiveLinks(rows, { startUs: 0, endUs: 100, widthPx: 500 }) as Array<{ x: Array<number | null>; y: Array<number | null>; hovertext?: string[] }>;
  assert.deepEqual(links.x, [0.01, 0.04, null]);
  assert.deepEqual(late.y, [1]);
  assert.match(late.hovertext?.[0] ?? "", /rank 1 arrived last, 30\.0 µs after the first/);
});

test("step boundaries are drawn at each step's first span", () => {
  const rows = buildRows(payloadOf([
    { rank: 0, name: "fwd", cat: "compute", ts: 100, dur: 5, args: { step: 0 } }, { rank: 1, name: "fwd", cat: "compute", ts: 90, dur: 5, args: { step: 0 } },
    { rank: 0, name: "fwd", cat: "compute", ts: 300, dur: 5, args: { step: 1 } },
  ], 2));
  assert.deepEqual(stepBoundaryShapes(rows, { startUs: 0, endUs: 1000, widthPx: 500 }, "#ccc").map((s) => s.x0), [0.09, 0.3]);
});

test("the renderer explains bad payloads instead of drawing nothing", () => {
  assert.match(payloadProblem({ version: 2, ranks: [], spans: [], summary: { ranks: [] } }) ?? "", /version 2.*draws version 1/);
  assert.match(payloadProblem('{"version": 1, "spa') ?? "", /truncated/);
  assert.match(payloadProblem({ version: 1, ranks: [] }) ?? "", /no spans/);
  assert.equal(payloadProblem(payloadOf([], 1)), null);
});
