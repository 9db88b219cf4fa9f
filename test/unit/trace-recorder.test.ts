import { test } from "node:test";
import assert from "node:assert/strict";
import { CommSpanColumns, createRankRecorder, forEachCommSpan, type SpanArgs, type SpanBatch } from "../../kernel/src/trace";

function fakeClock(startUs = 1_000_000): { clock: () => number; advance: (us: number) => void; reads: () => number } {
  let now = startUs;
  let reads = 0;
  return { clock: () => (reads++, now), advance: (us) => (now += us), reads: () => reads };
}

test("a disabled recorder never reads the clock, posts nothing and still runs the function", () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 2, enabled: false, post: (b) => batches.push(b), clock: c.clock });
  assert.equal(rec.span("forward", () => 41 + 1), 42);
  rec.record("allReduce", "comm", rec.now(), 5);
  rec.flush();
  assert.equal(c.reads(), 0);
  assert.equal(batches.length, 0);
  assert.equal(rec.pending, 0);
});

test("span times a synchronous function and returns its value", () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 1, enabled: true, post: (b) => batches.push(b), clock: c.clock, flushIntervalMs: 1e6 });
  const value = rec.span("forward", () => (c.advance(250), "done"), { args: { step: 3 } });
  assert.equal(value, "done");
  rec.flush();
  assert.deepEqual(batches, [{ rank: 1, spans: [{ name: "forward", cat: "compute", start: 1_000_000, dur: 250, args: { step: 3 } }] }]);
});

test("span of an async function lasts until its promise settles", async () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), clock: c.clock, flushIntervalMs: 1e6 });
  const result = await rec.span("load", async () => {
    await new Promise((r) => setImmediate(r));
    c.advance(1_500);
    return [1, 2];
  }, { cat: "data" });
  assert.deepEqual(result, [1, 2]);
  rec.flush();
  assert.equal(batches[0].spans[0].dur, 1_500);
  assert.equal(batches[0].spans[0].cat, "data");
});

test("a throwing function is recorded with error=true and the error still propagates", async () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), clock: c.clock, flushIntervalMs: 1e6 });
  assert.throws(() => rec.span("bad", () => { throw new Error("boom"); }), /boom/);
  await assert.rejects(rec.span("bad-async", async () => { throw new Error("later"); }), /later/);
  rec.flush();
  assert.deepEqual(batches[0].spans.map((s) => [s.name, s.args?.error]), [["bad", true], ["bad-async", true]]);
});

test("spans are posted in batches of at most maxBatch", () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 3, enabled: true, post: (b) => batches.push(b), clock: c.clock, maxBatch: 4, flushIntervalMs: 1e6 });
  for (let i = 0; i < 10; i++) rec.record(`op${i}`, "comm", c.clock(), 1);
  rec.flush();
  assert.deepEqual(batches.map((b) => b.spans.length), [4, 4, 2]);
  assert.deepEqual(batches.flatMap((b) => b.spans.map((s) => s.name)), Array.from({ length: 10 }, (_, i) => `op${i}`));
});

test("a span ending flushIntervalMs after the last batch posts at once", () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), clock: c.clock, flushIntervalMs: 100 });
  rec.flush();
  rec.record("a", "compute", c.clock(), 10);
  assert.equal(batches.length, 0, "10 us after the last flush: still buffered");
  c.advance(100_000);
  rec.record("b", "compute", c.clock(), 10);
  assert.equal(batches.length, 1);
  assert.deepEqual(batches[0].spans.map((s) => s.name), ["a", "b"]);
});

test("a lone span is posted by the timer even if nothing else is recorded", async () => {
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), flushIntervalMs: 20 });
  rec.flush();
  rec.record("lone", "compute", rec.now(), 1);
  assert.equal(batches.length, 0);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(batches.length, 1);
  assert.equal(batches[0].spans[0].name, "lone");
});

test("turning recording off posts what was buffered", () => {
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), flushIntervalMs: 1e6 });
  rec.record("x", "other", rec.now(), 1);
  rec.setEnabled(false);
  assert.equal(batches.length, 1);
  assert.equal(rec.enabled, false);
});

test("maxBatch below 1 is a RangeError naming the option", () => {
  assert.throws(() => createRankRecorder({ rank: 0, enabled: true, post: () => {}, maxBatch: 0 }), { name: "RangeError", message: /maxBatch/ });
});

test("collective records a comm span with op, bytes and a per-group sequence number", async () => {
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 1, enabled: false, post: (b) => batches.push(b), flushIntervalMs: 1e6 });
  assert.equal(await rec.collective("allReduce", 64, async () => "skipped"), "skipped");
  rec.setEnabled(true);
  await rec.collective("allReduce", 4096, async () => 1);
  await rec.collective("broadcast", 8, async () => 2, { group: "tp0" });
  await rec.collective("allGather", 16, async () => 3, { args: { algorithm: "ring" } });
  rec.flush();
  assert.equal(batches.length, 1, "one batch: the interval counts from the first span");
  assert.deepEqual(batches[0].spans.map((s) => [s.cat, s.name, s.args?.op, s.args?.bytes, s.args?.group, s.args?.seq]), [
    ["comm", "allReduce", "allReduce", 4096, "world", 1],
    ["comm", "broadcast", "broadcast", 8, "tp0", 0],
    ["comm", "allGather", "allGather", 16, "world", 2],
  ]);
  assert.equal(batches[0].spans[2].args?.algorithm, "ring");
});

/** A communicator's report of one call (comm/types.ts CommSpan), as the rank's hook passes it. */
function commReport(op: string, start: number, end: number, bytes: number) {
  return { op, algorithm: "direct", start, end, bytes, bytesSent: bytes / 2, bytesReceived: bytes / 2 + 1, messagesSent: 1, messagesReceived: 2 };
}

test("comm spans kept in columns reach the kernel with the args of the object form, each name and peer list stored once a batch", () => {
  const columns = new CommSpanColumns();
  const others = [1, 3];
  columns.push(commReport("allReduce", 1_000, 1_040, 4096), "world", 7, others);
  columns.push(commReport("allReduce", 1_050, 1_060, 4096), "world", 8, others);
  columns.push(commReport("broadcast", 1_070, 1_075, 64), "tp[0,1]", 1, undefined);
  const packed = columns.take()!;
  assert.equal(packed.count, 3);
  assert.deepEqual(packed.strings, ["allReduce", "direct", "world", "broadcast", "tp[0,1]"]);
  assert.deepEqual(packed.peerLists, [[1, 3]]);
  assert.equal(columns.take(), undefined, "take starts afresh");
  const seen: [string, number, number, SpanArgs][] = [];
  assert.equal(forEachCommSpan(structuredClone(packed), (name, start, dur, args) => seen.push([name, start, dur, args])), true);
  assert.deepEqual(seen, [
    ["allReduce", 1_000, 40, { op: "allReduce", bytes: 4096, algorithm: "direct", bytesSent: 2048, bytesReceived: 2049, messagesSent: 1, messagesReceived: 2, group: "world", seq: 7, peers: [1, 3] }],
    ["allReduce", 1_050, 10, { op: "allReduce", bytes: 4096, algorithm: "direct", bytesSent: 2048, bytesReceived: 2049, messagesSent: 1, messagesReceived: 2, group: "world", seq: 8, peers: [1, 3] }],
    ["broadcast", 1_070, 5, { op: "broadcast", bytes: 64, algorithm: "direct", bytesSent: 32, bytesReceived: 33, messagesSent: 1, messagesReceived: 2, group: "tp[0,1]", seq: 1 }],
  ]);
  assert.notEqual(seen[0][3].peers, seen[1][3].peers, "each span gets its own peers array");
});

test("comm columns that are not well formed are dropped whole, visiting nothing", () => {
  const columns = new CommSpanColumns();
  columns.push(commReport("allReduce", 0, 10, 16), "world", 1, [1]);
  const good = columns.take()!;
  const broken: [string, unknown][] = [
    ["a count past the values", { ...good, count: 2 }],
    ["values not a Float64Array", { ...good, values: Array.from(good.values) }],
    ["a name index past the table", { ...good, strings: good.strings.slice(0, 2) }],
    ["a peer list index past the table", { ...good, peerLists: [] }],
    ["a peer list of non-integers", { ...good, peerLists: [["1"]] }],
    ["not an object", "columns"],
  ];
  for (const [what, packed] of broken) {
    let visits = 0;
    assert.equal(forEachCommSpan(packed, () => visits++), false, what);
    assert.equal(visits, 0, what);
  }
});

test("a batch holds at most maxBatch spans, plain and comm together; comm spans ride in its columns", () => {
  const c = fakeClock();
  const batches: SpanBatch[] = [];
  const rec = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), clock: c.clock, maxBatch: 3, flushIntervalMs: 1e6 });
  rec.record("forward", "compute", 1_000_000, 5);
  rec.recordComm(commReport("allReduce", 1_000_010, 1_000_020, 16), "world", 1, [1]);
  assert.equal(batches.length, 0);
  rec.recordComm(commReport("allReduce", 1_000_030, 1_000_040, 16), "world", 2, [1]);
  assert.equal(batches.length, 1, "the third span filled the batch");
  assert.deepEqual(batches[0].spans.map((s) => s.name), ["forward"]);
  assert.equal(batches[0].comm?.count, 2);
  rec.recordComm(commReport("allReduce", 1_000_050, 1_000_060, 16), "world", 3, [1]);
  rec.setEnabled(false);
  assert.equal(batches.length, 2);
  assert.deepEqual(batches[1].spans, []);
  assert.equal(batches[1].comm?.count, 1);
  rec.recordComm(commReport("allReduce", 1_000_070, 1_000_080, 16), "world", 4, [1]);
  rec.flush();
  assert.equal(batches.length, 2, "a disabled recorder keeps no comm span");
});
