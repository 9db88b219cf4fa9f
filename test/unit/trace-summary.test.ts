import { test } from "node:test";
import assert from "node:assert/strict";
import { rankCategoryTime, summarizeTimeline, pipelineBubbleFraction, totalLength, type TimelineSpan, type SpanArgs, type SpanCategory } from "../../kernel/src/trace";

const span = (rank: number, name: string, cat: SpanCategory, ts: number, dur: number, args?: SpanArgs): TimelineSpan =>
  args === undefined ? { rank, name, cat, ts, dur } : { rank, name, cat, ts, dur, args };

test("a nested comm span takes its time out of the enclosing compute span", () => {
  const time = rankCategoryTime([span(0, "forward", "compute", 0, 100), span(0, "allReduce", "comm", 40, 20)]);
  assert.equal(totalLength(time.compute), 80);
  assert.equal(totalLength(time.comm), 20);
});

test("comm on its own stream overlaps compute; on the same stream it does not", () => {
  const concurrent = summarizeTimeline([span(0, "backward", "compute", 0, 100), span(0, "allReduce", "comm", 50, 100, { stream: "comm" })], 1);
  assert.equal(concurrent.ranks[0].overlapPct, 50);
  assert.equal(concurrent.overlapPct, 50);
  assert.equal(concurrent.durationUs, 150);
  const nested = summarizeTimeline([span(0, "step", "compute", 0, 100), span(0, "allReduce", "comm", 50, 50)], 1);
  assert.equal(nested.ranks[0].overlapPct, 0);
});

test("percentages are of the timeline's duration and idle is what idle spans measured", () => {
  const s = summarizeTimeline([
    span(0, "fwd", "compute", 0, 60), span(0, "wait", "idle", 60, 20), span(0, "allReduce", "comm", 80, 20),
    span(1, "load", "data", 0, 50), span(1, "fwd", "compute", 50, 30), span(1, "allReduce", "comm", 80, 20),
  ], 2);
  assert.deepEqual(s.ranks.map((r) => [r.computePct, r.idlePct, r.commPct, r.dataPct]), [[60, 20, 20, 0], [30, 0, 20, 50]]);
  assert.equal(s.spanCount, 6);
});

test("the straggler is the rank the others waited for most", () => {
  // Rank 2 arrives late at both allreduces: ranks 0, 1, 3 wait for it.
  const spans: TimelineSpan[] = [];
  const arrivals = [[10, 12, 40, 11], [100, 101, 90, 130]];
  arrivals.forEach((perRank, seq) => perRank.forEach((ts, rank) => spans.push(span(rank, "allReduce", "comm", ts, 5, { seq }))));
  const s = summarizeTimeline(spans, 4);
  assert.equal(s.collectives, 2);
  assert.equal(s.stragglerRank, 3, "rank 3 made the others wait 30+29+40 = 99 us in the second call vs rank 2's 30+28+29 = 87 us");
  assert.equal(s.ranks[3].waitedForUs, 99);
  assert.equal(s.ranks[2].waitedForUs, 87);
});

test("collectives without seq are linked by name and order on each rank", () => {
  const s = summarizeTimeline([
    span(0, "allReduce", "comm", 0, 5), span(0, "allReduce", "comm", 50, 5),
    span(1, "allReduce", "comm", 20, 5), span(1, "allReduce", "comm", 52, 5),
  ], 2);
  assert.equal(s.collectives, 2);
  assert.equal(s.stragglerRank, 1);
  assert.equal(s.ranks[1].waitedForUs, 22);
});

test("no collectives means no straggler", () => {
  assert.equal(summarizeTimeline([span(0, "fwd", "compute", 0, 10)], 2).stragglerRank, null);
});

/** GPipe: p stages, m micro-batches, forward time f and backward time 2f per micro-batch per stage. */
function gpipe(p: number, m: number, f: number): TimelineSpan[] {
  const spans: TimelineSpan[] = [];
  for (let stage = 0; stage < p; stage++) {
    for (let mb = 0; mb < m; mb++) spans.push(span(stage, `F${mb}`, "compute", (stage + mb) * f, f, { stage, microbatch: mb }));
    const backwardStart = (p - 1 + m) * f; // after the last forward leaves the last stage
    for (let mb = 0; mb < m; mb++) spans.push(span(stage, `B${mb}`, "compute", backwardStart + (p - 1 - stage + mb) * 2 * f, 2 * f, { stage, microbatch: mb }));
  }
  return spans;
}

test("the pipeline bubble of a GPipe schedule is (p-1)/(m+p-1)", () => {
  for (const [p, m] of [[4, 8], [2, 1], [4, 4], [8, 32]]) {
    const bubble = pipelineBubbleFraction(gpipe(p, m, 100));
    assert.ok(bubble !== null && Math.abs(bubble - (p - 1) / (m + p - 1)) < 1e-12, `p=${p} m=${m}: ${bubble}`);
  }
});

test("no stage-marked spans means no bubble", () => {
  assert.equal(summarizeTimeline([span(0, "fwd", "compute", 0, 10)], 1).bubbleFraction, null);
  assert.ok(Math.abs((summarizeTimeline(gpipe(4, 8, 10), 4).bubbleFraction ?? -1) - 3 / 11) < 1e-12);
});

// How long this takes is measured by `npm run bench:timeline` (a summary per live update), not here.
test("a summary of 100,000 spans links every collective and splits each rank's time", () => {
  const spans: TimelineSpan[] = [];
  for (let i = 0; i < 25_000; i++) for (let r = 0; r < 4; r++) spans.push(span(r, i % 2 ? "allReduce" : "fwd", i % 2 ? "comm" : "compute", i * 10 + r, 8, i % 2 ? { seq: i } : undefined));
  const s = summarizeTimeline(spans, 4);
  assert.equal(s.collectives, 12_500);
  // Each rank: 12,500 compute and 12,500 comm spans of 8 us over 250,000 us (+ the rank's offset).
  for (const rank of s.ranks) {
    assert.ok(Math.abs(rank.computePct - 40) < 0.01 && Math.abs(rank.commPct - 40) < 0.01, JSON.stringify(rank));
  }
});

test("the same seq in two groups is two collectives", () => {
  const s = summarizeTimeline([
    span(0, "allReduce", "comm", 0, 5, { seq: 0, group: "a" }), span(1, "allReduce", "comm", 10, 5, { seq: 0, group: "a" }),
    span(2, "allReduce", "comm", 0, 5, { seq: 0, group: "b" }), span(3, "allReduce", "comm", 50, 5, { seq: 0, group: "b" }),
  ], 4);
  assert.equal(s.collectives, 2);
  assert.equal(s.stragglerRank, 3);
  assert.equal(s.ranks[1].waitedForUs, 10);
});
