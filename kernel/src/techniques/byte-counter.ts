/**
 * Counts what a technique hands to the communicator: the payload bytes of
 * this rank's input to each collective (the same measure as the comm layer's
 * timeline spans: "payload bytes of this rank's input"). Wrap `dist` with it
 * and give the wrapper to the technique; the counts are per rank.
 */
import type { Collectives, ReduceOp } from "./types";

export interface ByteCounts {
  /** payload bytes passed to collectives since the last reset */
  bytes: number;
  /** number of collective calls since the last reset */
  calls: number;
  /** bytes by collective name, e.g. { allReduce: 4096 } */
  byOp: Record<string, number>;
}

export interface CountingCollectives extends Collectives {
  readonly counts: ByteCounts;
  reset(): void;
}

export function countBytes(inner: Collectives): CountingCollectives {
  const counts: ByteCounts = { bytes: 0, calls: 0, byOp: {} };
  const record = (op: string, x: ArrayBufferView): void => {
    counts.bytes += x.byteLength;
    counts.calls += 1;
    counts.byOp[op] = (counts.byOp[op] ?? 0) + x.byteLength;
  };
  return {
    get rank() {
      return inner.rank;
    },
    get size() {
      return inner.size;
    },
    counts,
    reset() {
      counts.bytes = 0;
      counts.calls = 0;
      counts.byOp = {};
    },
    allReduce(x, options?: { op?: ReduceOp }) {
      record("allReduce", x);
      return inner.allReduce(x, options);
    },
    allGather(x) {
      record("allGather", x);
      return inner.allGather(x);
    },
    // Keep the timeline hook reachable through the wrapper.
    ...(typeof (inner as { span?: unknown }).span === "function"
      ? { span: (name: string, fn: () => unknown, options?: object) => (inner as unknown as { span(n: string, f: () => unknown, o?: object): unknown }).span(name, fn, options) }
      : {}),
  } as CountingCollectives;
}
