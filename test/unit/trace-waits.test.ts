import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ArrivalWaits, CATEGORY_COLORS, TimelineAggregator, renderTimelineHtml, summarizeTimeline, type TimelineSpan,
} from "../../kernel/src/trace";

const allReduce = (rank: number, ts: number, dur: number, seq = 1): TimelineSpan => ({
  rank, name: "allReduce", cat: "comm", ts, dur,
  args: { op: "allReduce", group: "world", seq, peers: [0, 1, 2].filter((r) => r !== rank) },
});

test("once every member arrived, the early ones get idle spans up to the last arrival", () => {
  const waits = new ArrivalWaits();
  assert.deepEqual(waits.add(allReduce(0, 100, 900)), []);
  assert.deepEqual(waits.add(allReduce(2, 700, 300)), []);
  const idle = waits.add(allReduce(1, 400, 600));
  assert.deepEqual(
    idle.map((s) => [s.rank, s.cat, s.ts, s.dur, s.args?.waitedFor, s.args?.seq]),
    [[0, "idle", 100, 600, 2, 1], [1, "idle", 400, 300, 2, 1]],
  );
});

test("a wait is cut at the end of the rank's own call (a send that returned early did not wait)", () => {
  const waits = new ArrivalWaits();
  const pair = { group: "p2p:world:0->1", seq: 3 };
  waits.add({ rank: 0, name: "send", cat: "comm", ts: 0, dur: 5, args: { op: "send", peers: [1], ...pair } });
  const idle = waits.add({ rank: 1, name: "recv", cat: "comm", ts: 50, dur: 10, args: { op: "recv", peers: [0], ...pair } });
  assert.deepEqual(idle.map((s) => [s.rank, s.ts, s.dur]), [[0, 0, 5]]);
});

test("calls without peers are settled when the timeline is final; spans without group or seq are not linked", () => {
  const aggregator = new TimelineAggregator({ ranks: [0, 1].map((rank) => ({ rank, host: "h", device: "cpu" })), cellStartUs: 0 });
  aggregator.add({ rank: 0, spans: [{ name: "barrier", cat: "comm", start: 10, dur: 90, args: { group: "g", seq: 1 } }, { name: "x", cat: "comm", start: 0, dur: 5, args: { seq: 1 } }] });
  aggregator.add({ rank: 1, spans: [{ name: "barrier", cat: "comm", start: 60, dur: 40, args: { group: "g", seq: 1 } }, { name: "x", cat: "comm", start: 0, dur: 9, args: { seq: 1 } }] });
  assert.equal(aggregator.payload(true).spans.filter((s) => s.cat === "idle").length, 0);
  const final = aggregator.payload(false);
  assert.deepEqual(final.spans.filter((s) => s.cat === "idle").map((s) => [s.rank, s.ts, s.dur]), [[0, 10, 50]]);
  // 50 of rank 0's 100 us (its barrier from 10 to 100, the idle part nested inside it).
  assert.equal(final.summary.ranks[0]!.idlePct, 50);
});

test("the static picture shows a comm span nested in a compute span as comm", () => {
  const spans: TimelineSpan[] = [
    { rank: 0, name: "cell 1", cat: "compute", ts: 0, dur: 1000 },
    { rank: 0, name: "forward", cat: "compute", ts: 0, dur: 1000 },
    { rank: 0, name: "allReduce", cat: "comm", ts: 400, dur: 600 },
  ];
  const ranks = [{ rank: 0, host: "h", device: "cpu" }];
  const html = renderTimelineHtml({ version: 1, ranks, spans, summary: summarizeTimeline(spans, 1), live: false });
  assert.ok(html.includes(`fill="${CATEGORY_COLORS.comm}"`), "comm drawn");
  assert.ok(html.includes(`fill="${CATEGORY_COLORS.compute}"`), "compute drawn");
});
