// The rank's communication thread (kernel/src/comm/comm-thread.ts): reduced
// buckets are right, and a bucket's transfer happens while the rank thread
// is busy (the comm thread's measured spans lie inside a busy-loop span of
// the rank thread that never yields).
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { createCommThreadWorld } from "../../kernel/src/comm/comm-thread";
import type { LinkModel } from "../../kernel/src/comm";

class Ranks {
  private readonly workers: Worker[] = [];
  private nextId = 1;
  constructor(size: number, link?: LinkModel) {
    const world = createCommThreadWorld(size);
    for (let rank = 0; rank < size; rank++) {
      this.workers.push(
        new Worker(`require("tsx/cjs"); require(${JSON.stringify(path.join(__dirname, "comm-thread-rank.ts"))});`, {
          eval: true,
          workerData: { world, rank, ...(link ? { link } : {}) },
        }),
      );
    }
  }
  async run<T>(name: string, arg?: unknown): Promise<T[]> {
    const id = this.nextId++;
    return Promise.all(
      this.workers.map(
        (w, rank) =>
          new Promise<T>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`rank ${rank}: ${name} gave no reply in 60 s`)), 60_000);
            const onMessage = (m: { id: number; ok: boolean; value?: T; error?: string }) => {
              if (m.id !== id) return;
              clearTimeout(timer);
              w.off("message", onMessage);
              if (m.ok) resolve(m.value as T);
              else reject(new Error(`rank ${rank}: ${m.error}`));
            };
            w.on("message", onMessage);
            w.postMessage({ id, name, arg });
          }),
      ),
    );
  }
  close(): Promise<number[]> {
    return Promise.all(this.workers.map((w) => w.terminate()));
  }
}

const expected = (ranks: number, b: number, length: number, op: "sum" | "mean"): number[] =>
  Array.from({ length }, (_, i) => {
    let sum = 0;
    for (let r = 0; r < ranks; r++) sum += Math.fround(r * 1000 + b + i / length);
    return op === "mean" ? sum / ranks : sum;
  });

for (const size of [2, 3]) {
  describe(`comm thread, ${size} ranks, no link (direct path)`, () => {
    let ranks: Ranks;
    before(() => (ranks = new Ranks(size)));
    after(() => ranks.close());

    it("reduces every bucket, in order, to the sum and the mean over ranks", async () => {
      const lengths = [1, 7, 1000, 300_000];
      for (const op of ["sum", "mean"] as const) {
        const results = await ranks.run<number[][]>("reduce", { lengths, op });
        for (let r = 0; r < size; r++) {
          lengths.forEach((n, b) => {
            const want = expected(size, b, n, op);
            const got = results[r]![b]!;
            assert.equal(got.length, n, `rank ${r} bucket ${b} length`);
            for (let i = 0; i < n; i++) {
              if (Math.abs(got[i]! - want[i]!) > 1e-3) assert.fail(`rank ${r} ${op} bucket ${b}[${i}] = ${got[i]}, expected ${want[i]}`);
            }
          });
        }
        // every rank holds bit-identical results
        for (let r = 1; r < size; r++) assert.deepEqual(results[r], results[0]);
      }
    });

    it("copies a view of part of a buffer instead of taking the buffer", async () => {
      const results = await ranks.run<{ out: number[]; viewLength: number }>("partialView");
      for (const r of results) {
        assert.equal(r.viewLength, 4, "the caller's view is intact");
        assert.equal(r.out.length, 4);
      }
    });
  });
}

describe("comm thread on an emulated link: the transfer runs while the rank thread is busy", () => {
  // 2 buckets of 256 KiB at 20 Mbit/s: about 2 x 105 ms of transfer, well inside a 1.2 s busy loop.
  const link: LinkModel = { bandwidth: 20e6 / 8, latency: 0.001 };
  let ranks: Ranks;
  before(() => (ranks = new Ranks(2, link)));
  after(() => ranks.close());

  it("finishes the buckets' allReduce inside the rank thread's busy-loop span", async () => {
    const lengths = [65_536, 65_536];
    const busyMs = 1200;
    const replies = await ranks.run<{ busy: { start: number; end: number }; jobs: { start: number; end: number }[]; spans: { name: string; start: number; end: number; calls: number }[] }>(
      "overlap",
      { lengths, busyMs },
    );
    for (const [rank, reply] of replies.entries()) {
      const { busy, jobs, spans } = reply;
      assert.equal(spans.length, lengths.length, `rank ${rank}: one comm-thread span per bucket`);
      let commUs = 0;
      let overlapUs = 0;
      for (const job of jobs) {
        commUs += job.end - job.start;
        overlapUs += Math.max(0, Math.min(job.end, busy.end) - Math.max(job.start, busy.start));
      }
      // the emulated link makes each bucket take at least latency + bytes / bandwidth
      const minUs = lengths.reduce((s, n) => s + (link.latency + (4 * n) / link.bandwidth) * 1e6, 0);
      assert.ok(commUs >= 0.9 * minUs, `rank ${rank}: comm took ${(commUs / 1000).toFixed(1)} ms, the link needs ${(minUs / 1000).toFixed(1)} ms`);
      const last = jobs.at(-1)!;
      assert.ok(
        last.end < busy.end,
        `rank ${rank}: the last bucket ended ${((last.end - busy.end) / 1000).toFixed(1)} ms after the busy loop (comm did not progress while the rank thread computed)`,
      );
      assert.ok(overlapUs >= 0.9 * commUs, `rank ${rank}: only ${(overlapUs / 1000).toFixed(1)} of ${(commUs / 1000).toFixed(1)} ms of comm overlapped the busy loop`);
      for (const s of spans) assert.ok(s.calls >= 1, `rank ${rank}: ${s.name} carries the communicator's call record`);
    }
  });

  it("rejects jobs after close, naming the rank", async () => {
    const replies = await ranks.run<string>("close");
    replies.forEach((message, rank) => assert.match(message, new RegExp(`rank ${rank}: the communication thread is closed`)));
  });
});
