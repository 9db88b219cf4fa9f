// The same-host fast path for allReduce between rank threads. Instead of
// passing blocks around a ring (2(n-1) copies through channels), each rank
// copies a chunk of its input into its own staging slot in shared memory,
// then reduces its 1/n of the chunk straight out of every rank's slot into a
// shared result slot, then copies the whole result chunk out. Per rank that
// is one copy in, 1/n of the reduction, one copy out, whatever n is.
// Slots are double-buffered so chunk g+1 fills while chunk g is read.
//
// Per-rank counters (chunks completed, since the world began):
//   posted   - copied into its slot
//   reduced  - reduced its part into the result slot
//   consumed - copied the result out (so both slots of chunk g-2 are free)
import { blockStart, viewOf } from "./dtype";
import type { Reducer } from "./reduce-js";
import { CONSUMED, POSTED, REDUCED } from "./shm-layout";
import type { ShmTransport } from "./shm-transport";
import type { CallContext } from "./transport";
import type { CommArray } from "./types";
import type { FastAllReduce } from "./communicator";

export function attachDirectAllReduce(
  t: ShmTransport,
  simd: ((redop: number, dtype: number) => Reducer) | undefined,
): FastAllReduce {
  const { ctl, layout, rank: me, size: n } = t;
  const buffer = t.init.memory.buffer;
  let chunks = 0; // chunks this rank has completed in its world so far
  const word = (r: number, field: number) => layout.rankWord(r, field);
  const ringAll = () => {
    for (let r = 0; r < n; r++) if (r !== me) t.ring(r);
  };
  /** Blocks until every rank's `field` counter reaches `target`. */
  const waitAll = (call: CallContext, field: number, target: number) => {
    const lagging = () => {
      const out: number[] = [];
      for (let r = 0; r < n; r++) if (Atomics.load(ctl, word(r, field)) < target) out.push(r);
      return out;
    };
    let next = 0;
    t.blockUntil(
      call,
      () => false,
      () => {
        for (; next < n; next++) if (Atomics.load(ctl, word(next, field)) < target) return false;
        return true;
      },
      lagging,
    );
  };

  return (call: CallContext, x: CommArray, plainReduce: Reducer, redop: number): Promise<void> | undefined => {
    if (x.length === 0) return undefined;
    // slots and results are in the world's WebAssembly memory, where the SIMD kernels work in place
    const reduce = simd ? simd(redop, call.desc.dtype) : plainReduce;
    const width = x.BYTES_PER_ELEMENT;
    const perChunk = Math.floor(layout.slotBytes / width);
    const dtype = call.desc.dtype;
    for (let start = 0; start < x.length; start += perChunk) {
      const len = Math.min(perChunk, x.length - start);
      const g = chunks;
      const b = g & 1;
      if (g >= 2) waitAll(call, CONSUMED, g - 1); // slots of chunk g-2 are free everywhere
      viewOf(dtype, buffer, layout.slotAt(me, b), len).set(x.subarray(start, start + len) as never);
      Atomics.store(ctl, word(me, POSTED), g + 1);
      ringAll();
      waitAll(call, POSTED, g + 1);
      const lo = blockStart(me, len, n);
      const hi = blockStart(me + 1, len, n);
      if (hi > lo) {
        const result = viewOf(dtype, buffer, layout.resultAt(b) + lo * width, hi - lo);
        result.set(viewOf(dtype, buffer, layout.slotAt(0, b) + lo * width, hi - lo) as never);
        for (let r = 1; r < n; r++) reduce(result, viewOf(dtype, buffer, layout.slotAt(r, b) + lo * width, hi - lo));
      }
      Atomics.store(ctl, word(me, REDUCED), g + 1);
      ringAll();
      waitAll(call, REDUCED, g + 1);
      x.set(viewOf(dtype, buffer, layout.resultAt(b), len) as never, start);
      Atomics.store(ctl, word(me, CONSUMED), g + 1);
      ringAll();
      chunks = g + 1;
    }
    return Promise.resolve();
  };
}
