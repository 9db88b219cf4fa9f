import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportChromeTrace, summarizeTimeline, toChromeTrace, type TimelinePayload, type TimelineSpan } from "../../kernel/src/trace";

function samplePayload(): TimelinePayload {
  const spans: TimelineSpan[] = [];
  for (let rank = 0; rank < 4; rank++) {
    spans.push({ rank, name: "forward", cat: "compute", ts: 0, dur: 100 + rank });
    spans.push({ rank, name: "allReduce", cat: "comm", ts: 110 + rank, dur: 50, args: { op: "allReduce", bytes: 1 << 20, seq: 0, stream: "comm" } });
  }
  const ranks = [0, 1, 2, 3].map((rank) => ({ rank, host: "localhost", device: "cpu" }));
  return { version: 1, ranks, spans, summary: summarizeTimeline(spans, 4), live: false };
}

/** The Chrome Trace Event rules that Perfetto and HTA's parser rely on. */
function assertValidChromeTrace(trace: unknown): asserts trace is { traceEvents: Array<Record<string, unknown>> } {
  assert.ok(typeof trace === "object" && trace !== null && Array.isArray((trace as { traceEvents?: unknown }).traceEvents), "traceEvents[]");
  for (const e of (trace as { traceEvents: Array<Record<string, unknown>> }).traceEvents) {
    assert.ok(e.ph === "X" || e.ph === "M", `phase ${String(e.ph)}`);
    assert.ok(Number.isInteger(e.pid) && Number.isInteger(e.tid), "integer pid and tid");
    assert.equal(typeof e.name, "string");
    if (e.ph === "X") {
      assert.ok(typeof e.ts === "number" && Number.isFinite(e.ts), "ts in microseconds");
      assert.ok(typeof e.dur === "number" && e.dur >= 0, "dur >= 0");
      assert.equal(typeof e.cat, "string");
    } else {
      assert.ok(["process_name", "thread_name", "process_sort_index"].includes(e.name as string));
      assert.equal(typeof e.args, "object");
    }
  }
}

test("the export has one complete event per span, pid = rank, a tid per stream and named processes", () => {
  const trace = toChromeTrace(samplePayload());
  assertValidChromeTrace(JSON.parse(JSON.stringify(trace)));
  const complete = trace.traceEvents.filter((e) => e.ph === "X");
  assert.equal(complete.length, 8);
  assert.deepEqual([...new Set(complete.map((e) => e.pid))], [0, 1, 2, 3]);
  const allReduce = complete.find((e) => e.pid === 2 && e.name === "allReduce");
  assert.deepEqual({ ts: allReduce?.ts, dur: allReduce?.dur, cat: allReduce?.cat, tid: allReduce?.tid, bytes: allReduce?.args?.bytes }, { ts: 112, dur: 50, cat: "comm", tid: 1, bytes: 1 << 20 });
  const names = trace.traceEvents.filter((e) => e.name === "process_name").map((e) => (e.args as { name: string }).name);
  assert.deepEqual(names, ["rank 0 (localhost cpu)", "rank 1 (localhost cpu)", "rank 2 (localhost cpu)", "rank 3 (localhost cpu)"]);
  assert.deepEqual(trace.traceEvents.filter((e) => e.name === "thread_name" && e.pid === 0).map((e) => (e.args as { name: string }).name), ["main", "comm"]);
  assert.equal(trace.metadata.distributedInfo.world_size, 4);
});

test("a per-rank trace keeps that rank's events and carries distributedInfo.rank as HTA reads it", () => {
  const trace = toChromeTrace(samplePayload(), 3);
  assert.deepEqual(trace.distributedInfo, { rank: 3, world_size: 4, backend: "distlab" });
  assert.ok(trace.traceEvents.every((e) => e.pid === 3));
  assert.equal(trace.traceEvents.filter((e) => e.ph === "X").length, 2);
});

test("exportChromeTrace writes the combined file and one file per rank", async () => {
  const dir = await mkdtemp(join(tmpdir(), "distlab-trace-"));
  const written = await exportChromeTrace(samplePayload(), join(dir, "trace.json"), { perRank: true });
  assert.deepEqual(written.map((p) => p.slice(dir.length + 1)), ["trace.json", "trace.rank0.json", "trace.rank1.json", "trace.rank2.json", "trace.rank3.json"]);
  const combined: unknown = JSON.parse(await readFile(written[0], "utf8"));
  assertValidChromeTrace(combined);
  const rank1 = JSON.parse(await readFile(written[2], "utf8")) as { distributedInfo: { rank: number } };
  assert.equal(rank1.distributedInfo.rank, 1);
});
