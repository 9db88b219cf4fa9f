import { test } from "node:test";
import assert from "node:assert/strict";
import type { DisplayPayload, ExecutionIO } from "../../kernel/src/protocol/backend";
import { TimelineSession, TIMELINE_MIME_TYPE, checkTimelinePayload, createRankRecorder, epochMicros, type TimelinePayload, type SpanBatch } from "../../kernel/src/trace";

interface RecordedDisplay { payload: DisplayPayload; update: boolean }

/** An ExecutionIO that keeps every display it is given. */
function recordingIO(): { io: ExecutionIO; displays: RecordedDisplay[] } {
  const displays: RecordedDisplay[] = [];
  const io: ExecutionIO = {
    executionCount: 1,
    interruptSignal: new AbortController().signal,
    stream: () => {},
    display: (payload, update) => displays.push({ payload, update: update === true }),
    clearOutput: () => {},
    input: () => Promise.reject(new Error("no stdin")),
    comms: { registerTarget: () => {}, open: () => { throw new Error("no comms"); } },
  };
  return { io, displays };
}

const timelineOf = (d: RecordedDisplay): TimelinePayload => d.payload.data[TIMELINE_MIME_TYPE] as TimelinePayload;
const ranks = [0, 1, 2, 3].map((rank) => ({ rank, host: "localhost", device: "cpu" }));

test("start shows a live display with a display_id; the final bundle adds the static HTML", () => {
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 0 });
  session.start(io);
  assert.equal(displays.length, 1);
  assert.equal(displays[0].update, false);
  assert.equal(displays[0].payload.transient?.display_id, session.displayId);
  const data = displays[0].payload.data;
  assert.deepEqual(Object.keys(data).sort(), ["application/vnd.distlab.timeline+json", "text/plain"]);
  assert.ok(checkTimelinePayload(data[TIMELINE_MIME_TYPE]).ok);
  assert.equal(timelineOf(displays[0]).live, true);
  session.finish();
  assert.deepEqual(Object.keys(displays[1].payload.data).sort(), ["application/vnd.distlab.timeline+json", "text/html", "text/plain"]);
});

test("batches become updates of the same display, at most one per interval, and finish sends every span", () => {
  let nowMs = 0;
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 1_000_000, minUpdateIntervalMs: 250, now: () => nowMs });
  session.start(io);
  nowMs = 300;
  session.onBatch({ rank: 0, spans: [{ name: "fwd", cat: "compute", start: 1_000_100, dur: 50 }] });
  assert.equal(displays.length, 2, "the interval had passed: update at once");
  nowMs = 310;
  session.onBatch({ rank: 1, spans: [{ name: "fwd", cat: "compute", start: 1_000_120, dur: 40 }] });
  session.onBatch({ rank: 2, spans: [{ name: "fwd", cat: "compute", start: 1_000_130, dur: 40 }] });
  assert.equal(displays.length, 2, "within the interval: held back");
  const final = session.finish();
  assert.equal(displays.length, 3);
  for (const d of displays.slice(1)) {
    assert.equal(d.update, true);
    assert.equal(d.payload.transient?.display_id, session.displayId);
  }
  assert.deepEqual(timelineOf(displays[1]).spans, [{ rank: 0, name: "fwd", cat: "compute", ts: 100, dur: 50 }]);
  assert.equal(final.live, false);
  assert.deepEqual(final.spans.map((s) => [s.rank, s.ts]), [[0, 100], [1, 120], [2, 130]]);
  session.onBatch({ rank: 3, spans: [{ name: "late", cat: "compute", start: 1_000_200, dur: 1 }] });
  assert.equal(displays.length, 3, "nothing after finish");
});

test("a held-back batch is shown by the timer within the interval", async () => {
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 0, minUpdateIntervalMs: 40 });
  session.start(io);
  session.onBatch({ rank: 0, spans: [{ name: "fwd", cat: "compute", start: 10, dur: 5 }] });
  assert.equal(displays.length, 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(displays.length, 2);
  assert.equal(timelineOf(displays[1]).spans.length, 1);
  session.finish();
});

test("live updates keep the newest spans under the limit and say how many were left out", () => {
  let nowMs = 0;
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 0, liveSpanLimit: 10, minUpdateIntervalMs: 1, now: () => nowMs });
  session.start(io);
  nowMs = 10;
  session.onBatch({ rank: 0, spans: Array.from({ length: 25 }, (_, i) => ({ name: `s${i}`, cat: "compute" as const, start: i * 10, dur: 5 })) });
  const live = timelineOf(displays[1]);
  assert.equal(live.spans.length, 10);
  assert.equal(live.omittedSpans, 15);
  assert.equal(live.spans[0].name, "s15");
  assert.equal(live.summary.spanCount, 25, "the summary covers every span");
  assert.equal(session.finish().spans.length, 25);
  assert.ok(session.stats.lastUpdateBytes > 0);
});

test("clock offsets move a remote rank's spans onto the kernel clock", () => {
  const session = new TimelineSession({ ranks, cellStartUs: 1_000 });
  session.setClockOffset(3, { offsetUs: 500, uncertaintyUs: 20, roundTripUs: 40, samples: 5 });
  session.onBatch({ rank: 3, spans: [{ name: "fwd", cat: "compute", start: 1_700, dur: 10 }] });
  const final = session.finish();
  assert.equal(final.spans[0].ts, 200);
  assert.deepEqual(final.ranks[3], { rank: 3, host: "localhost", device: "cpu", clockOffsetUs: 500, clockUncertaintyUs: 20 });
});

test("recorders in four worker-like ranks feed a session end to end", async () => {
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: epochMicros(), minUpdateIntervalMs: 1 });
  session.start(io);
  const post = (batch: SpanBatch): void => session.onBatch(structuredClone(batch));
  await Promise.all(ranks.map(async ({ rank }) => {
    const rec = createRankRecorder({ rank, enabled: true, post });
    for (let step = 0; step < 3; step++) {
      await rec.span("forward", async () => { await new Promise((r) => setTimeout(r, rank === 3 ? 20 : 2)); }, { args: { step } });
      await rec.span("allReduce", async () => { await new Promise((r) => setTimeout(r, 1)); }, { cat: "comm", args: { op: "allReduce", bytes: 4096, seq: step } });
    }
    rec.flush();
  }));
  const final = session.finish();
  assert.equal(final.spans.length, 24);
  assert.equal(final.summary.collectives, 3);
  assert.equal(final.summary.stragglerRank, 3, "rank 3's forward is the slowest");
  assert.ok(final.spans.every((s) => s.ts >= 0 && s.ts < 5e6), "times are microseconds from the cell's start");
  const last = displays[displays.length - 1].payload.data;
  assert.match(String(last["text/html"]), /<svg[^>]*>.*rank 3.*<\/svg>/s);
  assert.match(String(last["text/plain"]), /straggler: rank 3/);
});

test("auto: a quiet short cell ends with no display; its payload is still returned", () => {
  let nowMs = 0;
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 1_000_000, show: "auto", autoShowAfterMs: 500, now: () => nowMs });
  session.start(io);
  session.onBatch({ rank: 0, spans: [{ name: "cell 1", cat: "compute", start: 1_000_100, dur: 7_000 }] });
  nowMs = 7;
  const final = session.finish();
  assert.equal(displays.length, 0);
  assert.equal(session.isShown, false);
  assert.equal(final.spans.length, 1);
});

test("auto: the first collective shows the live display at once; later batches update it", () => {
  let nowMs = 0;
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 1_000_000, show: "auto", minUpdateIntervalMs: 250, now: () => nowMs });
  session.start(io);
  nowMs = 10;
  session.onBatch({ rank: 0, spans: [{ name: "fwd", cat: "compute", start: 1_000_100, dur: 50 }] });
  assert.equal(displays.length, 0, "compute alone in the first 0.5 s shows nothing");
  session.onBatch({ rank: 1, spans: [{ name: "allReduce", cat: "comm", start: 1_000_200, dur: 30 }] });
  assert.equal(displays.length, 1);
  assert.equal(displays[0].update, false);
  assert.equal(timelineOf(displays[0]).spans.length, 2);
  session.finish();
  assert.equal(displays.length, 2);
  assert.equal(displays[1].update, true);
  assert.equal(displays[1].payload.transient?.display_id, session.displayId);
  assert.ok("text/html" in displays[1].payload.data);
});

test("auto: a cell without collectives is shown once it has run autoShowAfterMs", async () => {
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: epochMicros(), show: "auto", autoShowAfterMs: 30 });
  session.start(io);
  assert.equal(displays.length, 0);
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.equal(displays.length, 1, "the timer showed the live display");
  assert.equal(timelineOf(displays[0]).live, true);
  session.finish();
  assert.equal(displays.length, 2);
});

test("auto: a cell that passed autoShowAfterMs by its end, with no display yet, gets the final bundle once", () => {
  let nowMs = 0;
  const { io, displays } = recordingIO();
  const session = new TimelineSession({ ranks, cellStartUs: 0, show: "auto", autoShowAfterMs: 500, now: () => nowMs });
  session.start(io);
  nowMs = 600;
  session.finish();
  assert.equal(displays.length, 1);
  assert.equal(displays[0].update, false);
  assert.equal(timelineOf(displays[0]).live, false);
  assert.ok("text/html" in displays[0].payload.data);
});

test("after a costly live update the next waits twenty times its cost, so updates take at most 1/20 of the kernel's thread", () => {
  let nowMs = 0;
  const displays: number[] = [];
  let costMs = 0;
  const { io } = recordingIO();
  // Each display takes `costMs` of real time, as serialising and sending a large update does.
  io.display = () => {
    displays.push(nowMs);
    const until = performance.now() + costMs;
    while (performance.now() < until);
  };
  const session = new TimelineSession({ ranks, cellStartUs: 0, minUpdateIntervalMs: 100, now: () => nowMs });
  session.start(io);
  const batch = (start: number): SpanBatch => ({ rank: 0, spans: [{ name: "allReduce", cat: "comm", start, dur: 1 }] });
  nowMs = 150;
  session.onBatch(batch(1)); // a cheap update: the interval alone holds the next back
  nowMs = 260;
  session.onBatch(batch(2));
  assert.deepEqual(displays, [0, 150, 260]);
  costMs = 30; // this update costs 30 ms: the next waits at least 600 ms
  nowMs = 370;
  session.onBatch(batch(3));
  nowMs = 600;
  session.onBatch(batch(4));
  nowMs = 900;
  session.onBatch(batch(5));
  assert.deepEqual(displays, [0, 150, 260, 370], "updates within 20 x 30 ms of the costly one are held back");
  costMs = 0;
  nowMs = 2370; // well past 20 x the update's cost, however much longer than 30 ms a loaded machine made it
  session.onBatch(batch(6));
  assert.deepEqual(displays, [0, 150, 260, 370, 2370]);
  session.dispose();
});
