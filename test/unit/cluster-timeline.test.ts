import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/kernel-side/timeline-observer";
import { timelineCommand } from "../../kernel/src/cluster/kernel-side/timeline-command";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import { TIMELINE_MIME_TYPE, type TimelinePayload, type TimelineSpan } from "../../kernel/src/trace";
import { RecordingIO } from "./cluster-io";

let compiler: CellCompiler;
let observer: TimelineObserver;
let session: DistributedSession;

before(() => {
  compiler = new CellCompiler();
  observer = new TimelineObserver();
  session = new DistributedSession(compiler, observer);
});
after(async () => {
  await session.stop();
  compiler.close();
});

async function run(flags: string, body: string): Promise<{ outcome: ExecuteOutcome; io: RecordingIO }> {
  const io = new RecordingIO();
  const outcome = await session.runCell(body, 1, parseDistributedFlags(flags.split(" ").filter(Boolean)), io);
  return { outcome, io };
}

const timelines = (io: RecordingIO): Array<{ payload: TimelinePayload; update: boolean; displayId?: string; mimes: string[] }> =>
  io.displays.flatMap((display, i) => {
    const payload = display.data[TIMELINE_MIME_TYPE] as TimelinePayload | undefined;
    if (payload === undefined) return [];
    return [{ payload, update: io.displayUpdates[i]!, displayId: display.transient?.display_id, mimes: Object.keys(display.data).sort() }];
  });

const spansOf = (payload: TimelinePayload, rank: number, name: string): TimelineSpan[] => payload.spans.filter((s) => s.rank === rank && s.name === name);

// Rank 3 arrives 40 ms late at every allReduce: ranks 0..2 wait for it.
const LATE_RANK_CELL = `
const grad = new Float32Array(1024).fill(dist.rank);
for (let step = 0; step < 3; step++) {
  await dist.span("forward", async () => {
    if (dist.rank === 3) await new Promise((r) => setTimeout(r, 40));
    await dist.allReduce(grad);
  }, { args: { step } });
}
dist.rank`;

test("--timeline always: a 4-rank cell shows its timeline at once and ends with the final bundle under the same display id", async () => {
  const { outcome, io } = await run("-n 4 --timeline always", LATE_RANK_CELL);
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  const shown = timelines(io);
  assert.ok(shown.length >= 2, `${shown.length} timeline displays`);
  const [first, last] = [shown[0]!, shown[shown.length - 1]!];
  assert.equal(first.update, false);
  assert.equal(first.payload.live, true);
  assert.ok(first.displayId?.startsWith("distlab-timeline-"));
  assert.ok(shown.slice(1).every((d) => d.update && d.displayId === first.displayId));
  assert.equal(last.payload.live, false);
  assert.deepEqual(last.mimes, [TIMELINE_MIME_TYPE, "text/html", "text/plain"]);
  assert.equal(observer.last, last.payload);
  assert.deepEqual(last.payload.ranks.map((r) => [r.rank, r.device.startsWith("cpu:")]), [[0, true], [1, true], [2, true], [3, true]]);
});

test("collectives are comm spans linked by seq, waits for the late rank are idle, and the cell body is compute", async () => {
  await run("-n 4", LATE_RANK_CELL);
  const payload = observer.last!;
  for (const rank of [0, 1, 2, 3]) {
    const [cell] = spansOf(payload, rank, "cell 1");
    assert.ok(cell && cell.cat === "compute" && cell.args?.cell === true, `rank ${rank} cell span`);
    const forward = spansOf(payload, rank, "forward");
    assert.deepEqual(forward.map((s) => [s.cat, s.args?.step]), [["compute", 0], ["compute", 1], ["compute", 2]]);
    const reduces = spansOf(payload, rank, "allReduce");
    assert.equal(reduces.length, 3);
    for (const span of reduces) {
      assert.equal(span.cat, "comm");
      assert.equal(span.args?.op, "allReduce");
      assert.equal(span.args?.bytes, 4096);
      // threads take the direct path: 4096 bytes read of each of 3 peers' slots, one read each
      assert.deepEqual([span.args?.bytesReceived, span.args?.messagesReceived], [3 * 4096, 3]);
      assert.equal(typeof span.args?.algorithm, "string");
      assert.equal(span.args?.group, "world");
      assert.deepEqual(span.args?.peers, [0, 1, 2, 3].filter((r) => r !== rank));
      // Inside its forward span, and forward inside the cell's span.
      assert.ok(forward.some((f) => f.ts <= span.ts && span.ts + span.dur <= f.ts + f.dur + 1));
    }
  }
  const seqs = [0, 1, 2, 3].map((rank) => spansOf(payload, rank, "allReduce").map((s) => s.args?.seq));
  assert.ok(seqs.every((s) => JSON.stringify(s) === JSON.stringify(seqs[0])), JSON.stringify(seqs));
  for (const rank of [0, 1, 2]) {
    const waits = spansOf(payload, rank, "wait");
    assert.equal(waits.length, 3, `rank ${rank} waits`);
    for (const wait of waits) {
      assert.equal(wait.cat, "idle");
      assert.equal(wait.args?.waitedFor, 3);
      assert.ok(wait.dur > 25_000, `waited ${wait.dur} us for a 40 ms late rank`);
    }
  }
  assert.equal(spansOf(payload, 3, "wait").length, 0);
  const { summary } = payload;
  assert.equal(summary.stragglerRank, 3);
  assert.ok(summary.ranks[0]!.idlePct > 20, `rank 0 idle ${summary.ranks[0]!.idlePct}%`);
  assert.ok(summary.ranks[3]!.idlePct < 5, `rank 3 idle ${summary.ranks[3]!.idlePct}%`);
  assert.ok(summary.ranks[3]!.computePct > 50, `rank 3 compute ${summary.ranks[3]!.computePct}%`);
});

test("live updates carry spans while the cell still runs", async () => {
  const { io } = await run("-n 2", `
for (let i = 0; i < 12; i++) {
  await dist.span("step", () => new Promise((r) => setTimeout(r, 100)));
  await dist.allReduce(new Float64Array(8));
}`);
  const live = timelines(io).filter((d) => d.update && d.payload.live && d.payload.spans.length > 0);
  // A 1.2 s cell at 3 updates a second.
  assert.ok(live.length >= 2, `${live.length} live updates with spans`);
  assert.ok(live.some((d) => d.payload.spans.some((s) => s.cat === "comm")));
});

test("--timeline auto (the default): a quick cell with no collective shows nothing, one with a collective shows its timeline", async () => {
  const quiet = await run("-n 2", `console.log("skipped"); dist.rank`);
  assert.equal(quiet.outcome.status, "ok");
  assert.equal(timelines(quiet.io).length, 0, "a cell that only prints gets no timeline");
  assert.ok(observer.last!.spans.some((s) => s.name.startsWith("cell ")), "%dist timeline still has the quiet cell's spans");
  const failed = await run("-n 2", `throw new RangeError("--lr must be positive")`);
  assert.equal(failed.outcome.status, "error");
  assert.equal(timelines(failed.io).length, 0, "a cell whose check failed at once gets no timeline");
  const busy = await run("-n 2", "await dist.allReduce(new Float32Array(4))");
  const shown = timelines(busy.io);
  assert.ok(shown.length >= 1, "a cell that ran a collective gets its timeline");
  assert.equal(shown.at(-1)!.payload.live, false);
  assert.deepEqual(shown.at(-1)!.payload.ranks.map((r) => r.rank), [0, 1]);
});

test("--no-timeline shows nothing and keeps the last timeline", async () => {
  const before = observer.last;
  const { outcome, io } = await run("-n 2 --no-timeline", "await dist.allReduce(1)");
  assert.equal(outcome.status, "ok");
  assert.equal(timelines(io).length, 0);
  assert.equal(observer.last, before);
});

test("send and recv link as a pair; a sub-group's collective names its members", async () => {
  const { outcome } = await run("-n 2", `
if (dist.rank === 0) {
  await new Promise((r) => setTimeout(r, 30));
  await dist.send(new Float32Array(4), 1);
} else {
  await dist.recv(new Float32Array(4), 0);
}
const pair = dist.newGroup([0, 1], "pair");
await pair.allReduce(new Float32Array(2));`);
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  const payload = observer.last!;
  const [send] = spansOf(payload, 0, "send");
  const [recv] = spansOf(payload, 1, "recv");
  assert.equal(send?.args?.group, "p2p:world:0->1");
  assert.equal(recv?.args?.group, "p2p:world:0->1");
  assert.equal(send?.args?.seq, recv?.args?.seq);
  const [wait] = spansOf(payload, 1, "wait");
  assert.ok(wait && wait.args?.op === "recv" && wait.dur > 15_000, JSON.stringify(wait));
  const [grouped] = spansOf(payload, 1, "allReduce");
  assert.equal(grouped?.args?.group, "pair");
  assert.deepEqual(grouped?.args?.peers, [0]);
});

test("a comm span's args carry the bytes the transport moved: ring allReduce 2(n-1)/n S a rank, a send's payload on both ends", async () => {
  const floats = 4096; // S = 16 KiB, a multiple of n = 4 so the ring's blocks are equal
  const { outcome } = await run("-n 4", `
await dist.allReduce(new Float32Array(${floats}).fill(1), { algorithm: "ring" });
if (dist.rank === 0) await dist.send(new Float32Array(100), 1);
if (dist.rank === 1) await dist.recv(new Float32Array(100), 0);`);
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  const payload = observer.last!;
  const S = floats * 4;
  for (const rank of [0, 1, 2, 3]) {
    const [reduce] = spansOf(payload, rank, "allReduce");
    assert.equal(reduce?.args?.algorithm, "ring", `rank ${rank}: ${JSON.stringify(reduce?.args)}`);
    assert.equal(reduce?.args?.bytesSent, (2 * 3 * S) / 4, `rank ${rank} allReduce bytesSent: ${JSON.stringify(reduce?.args)}`);
    assert.equal(reduce?.args?.bytesReceived, (2 * 3 * S) / 4, `rank ${rank} allReduce bytesReceived: ${JSON.stringify(reduce?.args)}`);
  }
  const [send] = spansOf(payload, 0, "send");
  const [recv] = spansOf(payload, 1, "recv");
  assert.deepEqual([send?.args?.bytesSent, send?.args?.bytesReceived], [400, 0], `send args: ${JSON.stringify(send?.args)}`);
  assert.deepEqual([recv?.args?.bytesSent, recv?.args?.bytesReceived], [0, 400], `recv args: ${JSON.stringify(recv?.args)}`);
});

test("an error still leaves the final timeline of what ran", async () => {
  const { outcome, io } = await run("-n 2", `await dist.span("before", () => dist.barrier());\nif (dist.rank === 1) throw new Error("boom");\nawait dist.barrier();`);
  assert.equal(outcome.status, "error");
  const shown = timelines(io);
  const final = shown[shown.length - 1]!.payload;
  assert.equal(final.live, false);
  assert.equal(spansOf(final, 0, "before").length + spansOf(final, 1, "before").length, 2);
});

test("dist.span checks its arguments, naming them", async () => {
  const { outcome } = await run("-n 2", `dist.span("x", () => 1, { cat: "gpu" as any })`);
  assert.equal(outcome.status, "error");
  if (outcome.status === "error") assert.match(outcome.evalue, /dist\.span: cat must be one of compute\|comm\|data\|idle\|other, got 'gpu'/);
});

test("%dist timeline shows the last timeline again; --export writes the Chrome trace and a folder of per-rank HTA files, and names an unwritable path", async () => {
  await run("-n 4", LATE_RANK_CELL);
  const last = observer.last!;
  const shownIo = new RecordingIO();
  await timelineCommand(last, undefined, shownIo);
  assert.equal(shownIo.displays.length, 1);
  assert.equal(shownIo.displays[0]!.data[TIMELINE_MIME_TYPE], last);
  assert.equal(shownIo.displays[0]!.transient, undefined);

  const dir = mkdtempSync(join(tmpdir(), "distlab-export-"));
  const io = new RecordingIO();
  await timelineCommand(last, join(dir, "trace.json"), io);
  assert.match(io.text(), /wrote the Chrome trace of 4 ranks/);
  // This cell marks no steps: the export says how to mark them for HTA.
  assert.match(io.text(), /no training steps marked: wrap each step in dist\.step\(n, fn\)/);
  const trace = JSON.parse(readFileSync(join(dir, "trace.json"), "utf8")) as { traceEvents: Array<{ ph: string; pid: number; cat?: string }>; metadata: { distributedInfo: { world_size: number } } };
  assert.equal(trace.metadata.distributedInfo.world_size, 4);
  assert.deepEqual([...new Set(trace.traceEvents.filter((e) => e.ph === "X").map((e) => e.pid))].sort(), [0, 1, 2, 3]);
  assert.ok(trace.traceEvents.some((e) => e.ph === "X" && e.cat === "idle"));
  for (const rank of [0, 1, 2, 3]) {
    const perRank = JSON.parse(readFileSync(join(dir, "trace.hta", `rank${rank}.json`), "utf8")) as { distributedInfo: { rank: number } };
    assert.equal(perRank.distributedInfo.rank, rank);
  }

  const unwritable = join(dir, "no-such-folder", "trace.json");
  await assert.rejects(timelineCommand(last, unwritable, new RecordingIO()), (error: Error) => {
    assert.equal(error.name, "UsageError");
    assert.match(error.message, /--export: cannot write .*no-such-folder\/trace\.json: ENOENT/);
    return true;
  });
  assert.equal(existsSync(unwritable), false);
});
