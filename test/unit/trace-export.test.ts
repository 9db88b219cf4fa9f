import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportChromeTrace, summarizeTimeline, toChromeTrace, toHtaTrace, type TimelinePayload, type TimelineSpan } from "../../kernel/src/trace";

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
    assert.ok(["X", "M", "s", "t", "f"].includes(e.ph as string), `phase ${String(e.ph)}`);
    assert.ok(Number.isInteger(e.pid) && Number.isInteger(e.tid), "integer pid and tid");
    assert.equal(typeof e.name, "string");
    if (e.ph === "X") {
      assert.ok(typeof e.ts === "number" && Number.isFinite(e.ts), "ts in microseconds");
      assert.ok(typeof e.dur === "number" && e.dur >= 0, "dur >= 0");
      assert.equal(typeof e.cat, "string");
    } else if (e.ph !== "M") {
      assert.ok(Number.isInteger(e.id) && typeof e.ts === "number", "a flow event has an id and a time");
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

test("one collective's spans are linked across ranks by a flow, from the first arrival to the last", () => {
  const trace = toChromeTrace(samplePayload());
  const flow = trace.traceEvents.filter((e) => e.ph === "s" || e.ph === "t" || e.ph === "f");
  // Ranks arrive at 110..113: the flow starts on rank 0, steps through 1 and 2, ends on rank 3.
  assert.deepEqual(flow.map((e) => [e.ph, e.pid, e.ts, e.id]), [["s", 0, 110, 1], ["t", 1, 111, 1], ["t", 2, 112, 1], ["f", 3, 113, 1]]);
  // Each flow event sits inside its rank's span on the same thread, which is how viewers bind it.
  for (const event of flow) {
    const span = trace.traceEvents.find((e) => e.ph === "X" && e.pid === event.pid && e.tid === event.tid && e.ts! <= event.ts! && event.ts! < e.ts! + e.dur!);
    assert.equal(span?.name, "allReduce");
  }
  assert.equal(flow.at(-1)!.bp, "e");
});

/** Four ranks, three steps each marked by dist.step, with forward, allReduce (comm lane) and a wait. */
function steppedPayload(): TimelinePayload {
  const spans: TimelineSpan[] = [];
  for (let rank = 0; rank < 4; rank++) {
    spans.push({ rank, name: "warm-up", cat: "compute", ts: 0, dur: 50 });
    for (let step = 0; step < 3; step++) {
      const t0 = 100 + step * 1000;
      spans.push({ rank, name: `step ${step}`, cat: "other", ts: t0, dur: 1000, args: { step, stream: "steps" } });
      spans.push({ rank, name: "load", cat: "data", ts: t0, dur: 100 });
      spans.push({ rank, name: "forward", cat: "compute", ts: t0 + 100, dur: 400 });
      spans.push({ rank, name: "allReduce", cat: "comm", ts: t0 + 400, dur: 300, args: { op: "allReduce", seq: step, stream: "comm" } });
      spans.push({ rank, name: "wait", cat: "idle", ts: t0 + 700, dur: 50, args: { stream: "comm" } });
      spans.push({ rank, name: "optimizer", cat: "compute", ts: t0 + 800, dur: 150 });
    }
  }
  const ranks = [0, 1, 2, 3].map((rank) => ({ rank, host: "localhost", device: "cpu" }));
  return { version: 1, ranks, spans, summary: summarizeTimeline(spans, 4), live: false };
}

test("a rank's HTA trace: its rank first in the text, ProfilerStep per dist.step plus an end marker, kernels tied to host spans", () => {
  const trace = toHtaTrace(steppedPayload(), 2);
  const text = JSON.stringify(trace, null, 1);
  // HTA takes the first `"rank": N` (with a space) in the file as the file's rank.
  assert.equal(/"rank":\s+(\d+)/.exec(text)?.[1], "2");
  assert.deepEqual(trace.distributedInfo, { backend: "distlab", rank: 2, world_size: 4 });
  const steps = trace.traceEvents.filter((e) => String(e.name).startsWith("ProfilerStep#"));
  assert.deepEqual(steps.map((e) => [e.name, e.ts, e.dur]), [["ProfilerStep#0", 100, 1000], ["ProfilerStep#1", 1100, 1000], ["ProfilerStep#2", 2100, 1000], ["ProfilerStep#3", 3100, 0]]);
  const kernels = trace.traceEvents.filter((e) => e.cat === "kernel");
  const hosts = new Map(trace.traceEvents.filter((e) => e.ph === "X" && e.cat !== "kernel").map((e) => [(e.args as { correlation?: number }).correlation, e]));
  // Per step: forward and optimizer on lane 1, the allReduce on lane 2; warm-up (before the first step), data and waits are no kernels.
  assert.equal(kernels.length, 9);
  for (const kernel of kernels) {
    const args = kernel.args as { stream: number; correlation: number };
    assert.ok(Number.isInteger(args.stream) && args.stream > 0, "HTA counts events with a positive stream as kernels");
    const host = hosts.get(args.correlation);
    assert.ok(host !== undefined, `kernel ${String(kernel.name)} has a host span with its correlation`);
    assert.ok((host.ts as number) <= (kernel.ts as number), "the host span starts no later than its kernel");
    assert.equal(typeof (host.args as { stream?: unknown }).stream, "undefined", "host spans carry no string stream for HTA to misread");
  }
  const comm = kernels.filter((e) => (e.args as { stream: number }).stream === 2);
  assert.equal(comm.length, 3);
  for (const kernel of comm) {
    assert.match(String(kernel.name), /^nccl.*Kernel/, "HTA's communication pattern");
    assert.match(String(kernel.name), /distlab allReduce \(not NCCL\)/);
  }
  // In each step, forward 100..500 and the allReduce on the comm lane 400..700: 100 us of its 300 overlap.
  assert.deepEqual(trace.distlab.steps, [0, 1, 2]);
  assert.equal(trace.distlab.windowUs, 3050 - 200, "from step 0's forward (t = 200) to step 2's optimizer end (t = 3050)");
  assert.ok(Math.abs(trace.distlab.overlapPct - 100 / 3) < 1e-9);
});

test("exportChromeTrace writes the combined file and a folder of per-rank HTA files", async () => {
  const dir = await mkdtemp(join(tmpdir(), "distlab-trace-"));
  const written = await exportChromeTrace(steppedPayload(), join(dir, "trace.json"));
  assert.equal(written.combined, join(dir, "trace.json"));
  assert.equal(written.htaFolder, join(dir, "trace.hta"));
  assert.deepEqual(written.perRank.map((p) => p.slice(dir.length + 1)), ["trace.hta/rank0.json", "trace.hta/rank1.json", "trace.hta/rank2.json", "trace.hta/rank3.json"]);
  const combined: unknown = JSON.parse(await readFile(written.combined, "utf8"));
  assertValidChromeTrace(combined);
  const rank1 = JSON.parse(await readFile(written.perRank[1]!, "utf8")) as { distributedInfo: { rank: number } };
  assert.equal(rank1.distributedInfo.rank, 1);
  assert.equal(written.figures.length, 4);
});
