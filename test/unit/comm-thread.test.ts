// The rank's communication thread (kernel/src/comm/comm-thread.ts): reduced
// buckets are right, and a bucket's transfer happens while the rank thread
// is busy (the comm thread's measured spans lie inside a busy-loop span of
// the rank thread that never yields).
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { createCommThreadWorld } from "../../kernel/src/comm/comm-thread";
import { cancelShmWorld, type LinkModel, type ShmWorldInit } from "../../kernel/src/comm";
import type { WireStats } from "../../kernel/src/comm/wire-stats";
import { addWireStats } from "../../kernel/src/comm/wire-stats-merge";

class Ranks {
  private readonly workers: Worker[] = [];
  private nextId = 1;
  readonly world: ShmWorldInit;
  constructor(size: number, link?: LinkModel) {
    const world = (this.world = createCommThreadWorld(size));
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
      assert.ok(overlapUs >= 0.8 * commUs, `rank ${rank}: only ${(overlapUs / 1000).toFixed(1)} of ${(commUs / 1000).toFixed(1)} ms of comm overlapped the busy loop`);
      for (const s of spans) assert.ok(s.calls >= 1, `rank ${rank}: ${s.name} carries the communicator's call record`);
    }
  });

  it("counts what the comm thread moved: the link's ring of 2 ranks sends each bucket once each way", async () => {
    const length = 10_000;
    const replies = await ranks.run<WireStats>("stats", { jobs: 3, length });
    for (const [rank, stats] of replies.entries()) {
      assert.equal(stats.rank, rank);
      assert.equal(stats.byOp.allReduce?.calls, 3, `rank ${rank}: 3 allReduce calls counted`);
      // two ranks over a link: one whole-buffer exchange per call (recursive doubling)
      assert.equal(stats.bytesSent, 3 * 4 * length, `rank ${rank}: bytes sent`);
      assert.equal(stats.bytesReceived, 3 * 4 * length, `rank ${rank}: bytes received`);
      assert.equal(stats.byPeer[1 - rank]?.bytesSent, 3 * 4 * length);
    }
  });

  it("a job in flight when the world is cancelled (an interrupt) rejects with CommCancelledError, naming the rank", async () => {
    // 1 MiB at 20 Mbit/s: about 420 ms; cancelled after 100 ms
    const ending = ranks.run<string>("cancelled", { length: 262_144 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    cancelShmWorld(ranks.world, "interrupted by the test");
    const endings = await ending;
    endings.forEach((ended, rank) => {
      assert.match(ended, /^CommCancelledError: /, `rank ${rank}: ${ended}`);
      assert.match(ended, new RegExp(`rank ${rank}'s communication thread`));
      assert.match(ended, /interrupted by the test/);
    });
  });

  it("rejects jobs after close, naming the rank", async () => {
    const replies = await ranks.run<string>("close");
    replies.forEach((message, rank) => assert.match(message, new RegExp(`rank ${rank}: the communication thread is closed`)));
  });
});

describe("addWireStats: one rank's counts from its rank thread and its comm thread", () => {
  const a: WireStats = {
    rank: 1, bytesSent: 10, bytesReceived: 20, messagesSent: 1, messagesReceived: 2, framingBytesSent: 48,
    byOp: { allReduce: { bytesSent: 10, bytesReceived: 20, messagesSent: 1, messagesReceived: 2, calls: 1 } },
    byPeer: { 0: { bytesSent: 10, bytesReceived: 20, messagesSent: 1, messagesReceived: 2 } },
  };
  const b: WireStats = {
    rank: 1, bytesSent: 100, bytesReceived: 100, messagesSent: 3, messagesReceived: 3, framingBytesSent: 0,
    byOp: { allReduce: { bytesSent: 60, bytesReceived: 60, messagesSent: 2, messagesReceived: 2, calls: 2 }, barrier: { bytesSent: 40, bytesReceived: 40, messagesSent: 1, messagesReceived: 1, calls: 1 } },
    byPeer: { 2: { bytesSent: 100, bytesReceived: 100, messagesSent: 3, messagesReceived: 3 } },
  };
  it("adds totals, ops and peers, leaving the inputs alone", () => {
    const before = JSON.stringify([a, b]);
    const sum = addWireStats(a, b);
    assert.deepEqual(sum, {
      rank: 1, bytesSent: 110, bytesReceived: 120, messagesSent: 4, messagesReceived: 5, framingBytesSent: 48,
      byOp: {
        allReduce: { bytesSent: 70, bytesReceived: 80, messagesSent: 3, messagesReceived: 4, calls: 3 },
        barrier: { bytesSent: 40, bytesReceived: 40, messagesSent: 1, messagesReceived: 1, calls: 1 },
      },
      byPeer: { 0: a.byPeer[0], 2: b.byPeer[2] },
    });
    assert.equal(JSON.stringify([a, b]), before);
  });
  it("refuses counts of two ranks, naming both", () => {
    assert.throws(() => addWireStats(a, { ...b, rank: 0 }), /rank 1 and rank 0/);
  });
});

describe("comm thread on a 100 Mbit/s link (1 ms of it is 12,500 bytes, not a multiple of the channels' 16-byte pieces)", () => {
  const link: LinkModel = { bandwidth: 100e6 / 8, latency: 0.001 };
  let ranks: Ranks;
  before(() => (ranks = new Ranks(2, link)));
  after(() => ranks.close());

  it("takes about latency + bytes / bandwidth per bucket, not a wake-up slice more (73,000 floats: 24 ms each)", async () => {
    const lengths = [73_000, 73_000, 73_000, 73_000];
    await ranks.run("overlap", { lengths, busyMs: 0 }); // warm-up: the first large messages also compile the copy and reduce paths
    const replies = await ranks.run<{ jobs: { start: number; end: number }[] }>("overlap", { lengths, busyMs: 0 });
    const modelMs = (link.latency + (4 * 73_000) / link.bandwidth) * 1000;
    for (const [rank, reply] of replies.entries()) {
      const durations = reply.jobs.map((j) => (j.end - j.start) / 1000);
      const median = durations.slice().sort((a, b) => a - b)[2]!;
      assert.ok(median <= 1.5 * modelMs + 10, `rank ${rank}: buckets took ${durations.map((d) => d.toFixed(1)).join(", ")} ms; the link needs ${modelMs.toFixed(1)} ms`);
    }
  });

});
