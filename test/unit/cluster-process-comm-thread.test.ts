// Process ranks' communication thread (comm/comm-thread-world.ts): each rank
// process of `--backend processes` joins a second tcp world from a worker
// thread at group start, and collectives handed to it move while the rank's
// main thread computes. Real child processes, real sockets, driven through
// the DistributedSession the kernel uses.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/kernel-side/timeline-observer";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import type { TimelinePayload } from "../../kernel/src/trace";
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

/** 2 rank processes over an emulated 100 Mbit/s link: a 256 KiB allReduce takes about 21 ms of link time. */
const FLAGS = "-n 2 --backend processes --timeout 30 --link bandwidth=100Mbit,latency=1ms";

async function run(body: string): Promise<ExecuteOutcome> {
  return session.runCell(body, 1, parseDistributedFlags(FLAGS.split(" ")), new RecordingIO());
}

function resultJson(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

test("a process rank's comm thread finishes an allReduce while the rank's main thread never yields", async () => {
  // The job is handed over, then the main thread spins for 1.5 s without turning its event loop: a
  // transfer driven by this thread (isend/irecv) could not move. The comm thread's own clock says
  // when the job ended; it must be inside the spin, and the result right.
  const outcome = await run(`
    const thread = dist.commThread;
    if (!thread) throw new Error("no communication thread on a process rank");
    const x = new Float32Array(64 * 1024).fill(dist.rank + 1);
    await dist.barrier();
    const job = thread.run(x, { op: "sum", name: "spin test" });
    const spinStart = performance.timeOrigin + performance.now();
    while (performance.timeOrigin + performance.now() - spinStart < 1500) {}
    const spinEnd = performance.timeOrigin + performance.now();
    const { data, start, end } = await job;
    ({ jobStartMs: start / 1000 - spinStart, jobEndMs: end / 1000 - spinStart, spinMs: spinEnd - spinStart, first: data[0], last: data[data.length - 1], length: data.length })
  `);
  const ranks = resultJson(outcome) as { jobStartMs: number; jobEndMs: number; spinMs: number; first: number; last: number; length: number }[];
  assert.equal(ranks.length, 2);
  for (const [rank, r] of ranks.entries()) {
    assert.deepEqual([r.first, r.last, r.length], [3, 3, 64 * 1024], `rank ${rank}: the sum of 1s and 2s`);
    console.log(`rank ${rank}: job ran ${r.jobStartMs.toFixed(1)}..${r.jobEndMs.toFixed(1)} ms into a ${r.spinMs.toFixed(1)} ms spin of the main thread`);
    assert.ok(r.jobEndMs < r.spinMs, `rank ${rank}: the comm thread finished ${r.jobEndMs.toFixed(1)} ms into a ${r.spinMs.toFixed(1)} ms spin of the main thread (must be inside it)`);
  }
});

test("DDP's bucket allReduces on process ranks run on the comm lane while backward computes", async () => {
  // A deep, narrow MLP: many layers, so buckets become ready early in backward; a batch large enough
  // that backward outlasts the exchange, so every bucket but the last can hide behind it (at 1024
  // samples a rank, on 2 busy cores, 2-9 of 20 did: too close to the bound below).
  const outcome = await run(`
    import { DistributedDataParallel } from "distlab/techniques";
    import { createMlp } from "distlab/models";
    import { teacherClassification, datasetBatch } from "distlab/data";
    const WIDTH = 128;
    const model = createMlp({ sizes: [32, ...Array(8).fill(WIDTH), 10], seed: 3 });
    const layerBytes = 4 * (WIDTH * WIDTH + WIDTH);
    const ddp = new DistributedDataParallel(model, dist, { firstBucketMiB: (4 * (WIDTH * 10 + 10)) / 2 ** 20, bucketCapMiB: (2 * layerBytes) / 2 ** 20 });
    const data = teacherClassification({ n: 4096, inputs: 32, outputs: 10, seed: 1 });
    const batch = datasetBatch(data, Array.from({ length: 2048 }, (_, i) => (i + 2048 * dist.rank) % 4096));
    for (let step = 0; step < 4; step++) await ddp.step(batch);
    tf.dispose([batch.x, batch.y]);
    ddp.buckets.length
  `);
  const buckets = resultJson(outcome) as number[];
  assert.ok(buckets[0]! >= 3, `several buckets: ${buckets}`);
  const payload = observer.last as TimelinePayload;
  for (const rank of [0, 1]) {
    const spans = payload.spans.filter((s) => s.rank === rank);
    const backward = spans.filter((s) => s.name === "forward+backward");
    const bucketSpans = spans.filter((s) => s.cat === "comm" && s.name.startsWith("bucket ") && s.args?.stream === "comm");
    assert.equal(backward.length, 4, `rank ${rank}: a forward+backward span a step`);
    assert.equal(bucketSpans.length, 4 * buckets[0]!, `rank ${rank}: every bucket of every step on the comm lane (${spans.filter((s) => s.name.startsWith("bucket ")).map((s) => JSON.stringify(s.args))})`);
    // Time (microseconds) each bucket span shares with its step's forward+backward span on the same rank.
    const overlap = bucketSpans.reduce((sum, b) => {
      const shared = backward.reduce((t, f) => t + Math.max(0, Math.min(b.ts + b.dur, f.ts + f.dur) - Math.max(b.ts, f.ts)), 0);
      return sum + shared;
    }, 0);
    const commTime = bucketSpans.reduce((sum, b) => sum + b.dur, 0);
    // Every bucket but the last of each step can be ready and sent before backward ends.
    const hiddenInsideBackward = bucketSpans.filter((b) => backward.some((f) => b.ts >= f.ts && b.ts + b.dur <= f.ts + f.dur)).length;
    console.log(`rank ${rank}: ${hiddenInsideBackward} of ${bucketSpans.length} bucket allReduces wholly inside backward; overlap ${(overlap / 1000).toFixed(1)} of ${(commTime / 1000).toFixed(1)} ms of bucket time`);
    assert.ok(hiddenInsideBackward >= 4, `rank ${rank}: only ${hiddenInsideBackward} of ${bucketSpans.length} bucket allReduces ran wholly inside backward`);
    assert.ok(overlap >= 0.25 * commTime, `rank ${rank}: bucket allReduces overlapped backward for ${(overlap / 1000).toFixed(1)} of ${(commTime / 1000).toFixed(1)} ms`);
  }
});

test("a rank that fails while its peer waits in a comm-thread job ends the cell at once, and the comm thread is cancelled", async () => {
  // --timeout 30: a job woken only by the timeout would take 30 s.
  const started = Date.now();
  const outcome = await run(
    "if (dist.rank === 1) {\n  await new Promise((r) => setTimeout(r, 200));\n  throw new RangeError('rank one fails');\n}\n" +
      "try { await dist.commThread!.run(new Float32Array(1024), { name: 'orphan bucket' }); } catch (e) { (globalThis as any).jobError = `${(e as Error).name}: ${(e as Error).message}`; }\n1",
  );
  assert.equal(outcome.status, "error", JSON.stringify(outcome));
  const error = outcome as { ename: string; evalue: string };
  assert.equal(error.ename, "RangeError");
  assert.match(error.evalue, /^rank 1: RangeError: rank one fails/);
  assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  // Rank 0's job was rejected by the cancel (its comm thread's wait ended), naming its comm thread and the job.
  const jobError = resultJson(await run("(globalThis as any).jobError ?? 'none'")) as string[];
  assert.match(jobError[0]!, /rank 0's communication thread, orphan bucket: .*cancel/i);
  // The rebuilt world has working comm threads again.
  const sum = resultJson(await run("Array.from(await dist.commThread!.allReduce(new Float32Array([dist.rank + 1]), { op: 'sum' }))")) as number[][];
  assert.deepEqual(sum, [[3], [3]]);
});
