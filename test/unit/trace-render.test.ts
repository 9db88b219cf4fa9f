import { test } from "node:test";
import assert from "node:assert/strict";
import { checkTimelinePayload, renderTimelineHtml, renderTimelineText, summarizeTimeline, CATEGORY_COLORS, type TimelinePayload, type TimelineSpan } from "../../kernel/src/trace";

function payloadOf(spans: TimelineSpan[], rankCount: number): TimelinePayload {
  const ranks = Array.from({ length: rankCount }, (_, rank) => ({ rank, host: "h", device: "cpu" }));
  return { version: 1, ranks, spans, summary: summarizeTimeline(spans, rankCount), live: false };
}

test("the static picture has one labelled row per rank in category colours", () => {
  const html = renderTimelineHtml(payloadOf([
    { rank: 0, name: "fwd", cat: "compute", ts: 0, dur: 500 },
    { rank: 1, name: "allReduce", cat: "comm", ts: 500, dur: 500 },
  ], 2));
  assert.match(html, /<svg /);
  assert.match(html, />rank 0</);
  assert.match(html, />rank 1</);
  assert.ok(html.includes(`fill="${CATEGORY_COLORS.compute}"`));
  assert.ok(html.includes(`fill="${CATEGORY_COLORS.comm}"`));
  assert.match(html, /<table class="distlab-timeline-summary">/);
});

test("100,000 spans draw as a bounded picture: at most one rectangle per pixel column per rank", () => {
  const spans: TimelineSpan[] = [];
  for (let i = 0; i < 25_000; i++) for (let rank = 0; rank < 4; rank++) spans.push({ rank, name: "op", cat: i % 2 ? "comm" : "compute", ts: i * 10, dur: 10 });
  const html = renderTimelineHtml(payloadOf(spans, 4));
  const rects = html.match(/<rect /g)?.length ?? 0;
  assert.ok(rects > 4 && rects <= 4 * 800, `${rects} rects`);
  assert.ok(html.length < 400_000, `${html.length} chars`);
});

test("names in the picture are escaped", () => {
  const html = renderTimelineHtml({ ...payloadOf([], 1), ranks: [{ rank: 0, host: "<script>", device: "cpu" }] });
  assert.ok(!html.includes("<script>"));
});

test("the text summary names percentages per rank and the straggler", () => {
  const text = renderTimelineText(payloadOf([
    { rank: 0, name: "allReduce", cat: "comm", ts: 0, dur: 100, args: { seq: 0 } },
    { rank: 1, name: "allReduce", cat: "comm", ts: 60, dur: 40, args: { seq: 0 } },
  ], 2));
  assert.match(text, /2 ranks, 2 spans, 100 us/);
  assert.match(text, /^ {3}0 +0\.0% +100\.0%/m);
  assert.match(text, /straggler: rank 1 \(others waited 60 us for it\)/);
});

test("payload checks name what is wrong", () => {
  assert.deepEqual(checkTimelinePayload({ version: 2, ranks: [], spans: [], summary: {} }), { ok: false, reason: "unsupported timeline version 2 (this version reads 1)" });
  assert.equal(checkTimelinePayload("{\"version\": 1, \"ranks\": [").ok, false);
  assert.match((checkTimelinePayload({ version: 1, ranks: [], spans: [{ rank: 0 }], summary: {} }) as { reason: string }).reason, /span 0 is malformed/);
  assert.equal(checkTimelinePayload(payloadOf([], 1)).ok, true);
});
