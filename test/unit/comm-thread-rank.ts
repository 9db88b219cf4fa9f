// One rank thread of comm-thread.test.ts: owns a CommThread (the rank's
// communication thread) and runs the test's scenarios on request, the way a
// rank of a %%distributed cell would: hand buckets to the comm thread, then
// keep this thread busy.
import { parentPort, workerData } from "node:worker_threads";
import { CommThread, type CommThreadSpan } from "../../kernel/src/comm/comm-thread";
import { nowMicros } from "../../kernel/src/comm/transport";
import type { LinkModel, ShmWorldInit } from "../../kernel/src/comm";

const { world, rank, link } = workerData as { world: ShmWorldInit; rank: number; link?: LinkModel };
const spans: CommThreadSpan[] = [];
const thread = new CommThread({ world, rank, timeoutMs: 30_000, ...(link ? { link } : {}), onSpan: (s) => spans.push(s) });

/** Bucket b of rank r: element i is r * 1000 + b + i / length (distinct per rank, bucket and element). */
function bucket(r: number, b: number, length: number): Float32Array {
  const x = new Float32Array(length);
  for (let i = 0; i < length; i++) x[i] = r * 1000 + b + i / length;
  return x;
}

/** Spins for `ms` without yielding: the thread is as busy as TF.js computing a layer. */
function busy(ms: number): { start: number; end: number } {
  const start = nowMicros();
  let sink = 0;
  while (nowMicros() - start < ms * 1000) sink += Math.sqrt(sink + 1);
  if (sink < 0) throw new Error("unreachable");
  return { start, end: nowMicros() };
}

type Scenario = (arg: any) => Promise<unknown>;
const SCENARIOS: Record<string, Scenario> = {
  /** Reduce buckets of the given lengths; returns each result. */
  async reduce({ lengths, op }: { lengths: number[]; op: "sum" | "mean" }) {
    const results = await Promise.all(lengths.map((n, b) => thread.allReduce(bucket(rank, b, n), { op, name: `bucket ${b}` })));
    return results.map((r) => Array.from(r));
  },
  /** Hand over buckets, then spin for busyMs without yielding; returns the busy span and the comm thread's spans. */
  async overlap({ lengths, busyMs }: { lengths: number[]; busyMs: number }) {
    await thread.ready();
    await thread.allReduce(new Float32Array(4)); // both ranks' comm threads are up and joined
    spans.length = 0;
    const buckets = lengths.map((n, b) => bucket(rank, b, n));
    const flights = buckets.map((x, b) => thread.run(x, { op: "mean", name: `bucket ${b}` }));
    const busySpan = busy(busyMs);
    const results = await Promise.all(flights);
    return { busy: busySpan, jobs: results.map((r) => ({ start: r.start, end: r.end })), spans: spans.map((s) => ({ name: s.name, start: s.start, end: s.end, calls: s.calls.length })) };
  },
  /** Reduce `jobs` buckets of `length` floats after zeroing the counts; returns the comm thread's counts. */
  async stats({ jobs, length }: { jobs: number; length: number }) {
    thread.resetWireStats();
    for (let b = 0; b < jobs; b++) await thread.allReduce(bucket(rank, b, length), { op: "sum" });
    return thread.wireStats();
  },
  /** A view of part of a buffer is copied before it is handed over; the caller's array stays intact. */
  async partialView() {
    const whole = bucket(rank, 0, 8);
    const view = whole.subarray(2, 6);
    const out = await thread.allReduce(view, { op: "sum" });
    return { out: Array.from(out), viewLength: view.length };
  },
  /** A job long enough to be cancelled midway; returns how it ended. */
  async cancelled({ length }: { length: number }) {
    return thread.allReduce(bucket(rank, 0, length)).then(
      () => "resolved",
      (e: Error) => `${e.name}: ${e.message}`,
    );
  },
  async close() {
    await thread.close();
    return thread.allReduce(new Float32Array(4)).then(() => "resolved", (e: Error) => e.message);
  },
};

parentPort!.on("message", async (m: { id: number; name: string; arg: unknown }) => {
  try {
    const value = await SCENARIOS[m.name]!(m.arg);
    parentPort!.postMessage({ id: m.id, ok: true, value });
  } catch (e) {
    const error = e as Error;
    parentPort!.postMessage({ id: m.id, ok: false, error: `${error.name}: ${error.message}` });
  }
});
