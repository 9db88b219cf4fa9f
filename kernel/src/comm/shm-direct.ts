// The same-host fast paths between rank threads ("direct"): threads share
// memory, so instead of passing blocks around a ring through channels, each
// rank copies its input once into its own staging slot and every rank reads
// the others' slots in place. Chunks run on the counter-ordered pipeline of
// shm-pipeline.ts; reductions are WebAssembly SIMD kernels that work on the
// world's shared WebAssembly.Memory directly.
//
// Per rank and per byte of input (n ranks, S bytes):
//   allReduce      copy in S, reduce S/n from n slots into the shared result, copy out S
//                  (small messages: reduce all S into a private scratch slot, one wait)
//   reduceScatter  copy in S, reduce S/n from n slots, copy out S/n
//   allGather      copy in S, copy out n S
//   broadcast      root copies in S, the others copy out S
import { blockStart, viewOf } from "./dtype";
import { jsKernels, type ReduceKernels } from "./reduce-wasm";
import { ShmPipeline, type ChunkPlan } from "./shm-pipeline";
import type { ShmTransport } from "./shm-transport";
import type { CallContext } from "./transport";
import type { CommArray } from "./types";

/** allReduce up to this many bytes reduces the whole message on every rank after one wait. */
export const ONE_SHOT_BYTES = 32 * 1024;

/** Collectives over the whole shm world; each runs synchronously to completion (or throws). */
export interface DirectCollectives {
  allReduce(call: CallContext, x: CommArray, out: CommArray, redop: number): void;
  /** out: this rank's block of the reduced vector */
  reduceScatter(call: CallContext, x: CommArray, out: CommArray, redop: number): void;
  /** out: n x.length elements, rank r's x at r x.length */
  allGather(call: CallContext, x: CommArray, out: CommArray): void;
  /** x: the data on root; out: where every rank (root included) gets it */
  broadcast(call: CallContext, x: CommArray, out: CommArray, root: number): void;
}

export function attachDirectCollectives(
  t: ShmTransport,
  simd: ((redop: number, dtype: number) => ReduceKernels) | undefined,
): DirectCollectives {
  const { layout, rank: me, size: n } = t;
  const buffer = t.init.memory.buffer;
  const pipeline = new ShmPipeline(t);
  const kernelsFor = (redop: number, dtype: number) => (simd ?? jsKernels)(redop, dtype);
  /** typed view of `len` elements at element offset `at` of a slot that starts at byte `slotAt` */
  const view = (dtype: number, slotAt: number, at: number, len: number, width: number) => viewOf(dtype, buffer, slotAt + at * width, len);

  /** dst = op over ranks of the `len` elements at element `at` of every rank's staging slot `slot` */
  const reduceSlots = (k: ReduceKernels, dst: CommArray, dtype: number, slot: number, at: number, len: number, width: number) => {
    const src = (r: number) => view(dtype, layout.slotAt(r, slot), at, len, width);
    if (n === 1) return dst.set(src(0) as never);
    k.combine(dst, src(0), src(1));
    for (let r = 2; r < n; r++) k.reduce(dst, src(r));
  };

  const perChunk = (x: CommArray) => Math.floor(layout.slotBytes / x.BYTES_PER_ELEMENT);

  return {
    allReduce(call, x, out, redop) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      const k = kernelsFor(redop, dtype);
      const P = perChunk(x);
      const chunkLen = (i: number) => Math.min(P, x.length - i * P);
      const copyIn = (i: number, slot: number) => {
        view(dtype, layout.slotAt(me, slot), 0, chunkLen(i), width).set(x.subarray(i * P, i * P + chunkLen(i)) as never);
      };
      if (x.byteLength <= Math.min(ONE_SHOT_BYTES, layout.slotBytes)) {
        // latency-bound: one wait, then every rank reduces the whole message into its own scratch slot
        return pipeline.run(call, {
          chunks: x.length > 0 ? 1 : 0,
          outNeedsReduced: false,
          copyIn,
          process(_i, slot) {
            const scratch = view(dtype, layout.scratchFor(me), 0, x.length, width);
            reduceSlots(k, scratch, dtype, slot, 0, x.length, width);
            out.set(scratch as never);
          },
          copyOut() {},
        });
      }
      // slices of a chunk start on 64-byte lines, so no two ranks write one cache line of the result
      const unit = Math.max(1, 64 / width);
      const slice = (len: number, r: number) => Math.min(len, blockStart(r, Math.ceil(len / unit), n) * unit);
      pipeline.run(call, {
        chunks: Math.ceil(x.length / P),
        outNeedsReduced: true,
        copyIn,
        process(i, slot) {
          const len = chunkLen(i);
          const lo = slice(len, me);
          const hi = slice(len, me + 1);
          if (hi > lo) reduceSlots(k, view(dtype, layout.resultAt(slot), lo, hi - lo, width), dtype, slot, lo, hi - lo, width);
        },
        copyOut(i, slot) {
          out.set(view(dtype, layout.resultAt(slot), 0, chunkLen(i), width) as never, i * P);
        },
      });
    },

    reduceScatter(call, x, out, redop) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      const k = kernelsFor(redop, dtype);
      // chunk i holds piece i of every rank's block, piece r at element r*q of the slot, so every
      // rank reduces its own piece of every chunk (balanced) instead of waiting for chunks of its block
      const q = Math.max(1, Math.floor(perChunk(x) / n));
      const start = (r: number) => blockStart(r, x.length, n);
      const piece = (r: number, i: number): [number, number] => {
        const lo = Math.min(start(r) + i * q, start(r + 1));
        return [lo, Math.min(lo + q, start(r + 1))];
      };
      let longest = 0;
      for (let r = 0; r < n; r++) longest = Math.max(longest, start(r + 1) - start(r));
      pipeline.run(call, {
        chunks: Math.ceil(longest / q),
        outNeedsReduced: false,
        copyIn(i, slot) {
          for (let r = 0; r < n; r++) {
            const [lo, hi] = piece(r, i);
            if (hi > lo) view(dtype, layout.slotAt(me, slot), r * q, hi - lo, width).set(x.subarray(lo, hi) as never);
          }
        },
        process(i, slot) {
          const [lo, hi] = piece(me, i);
          if (hi <= lo) return;
          const scratch = view(dtype, layout.scratchFor(me), 0, hi - lo, width);
          reduceSlots(k, scratch, dtype, slot, me * q, hi - lo, width);
          out.set(scratch as never, lo - start(me));
        },
        copyOut() {},
      });
    },

    allGather(call, x, out) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      const m = x.length;
      const P = perChunk(x);
      const chunkLen = (i: number) => Math.min(P, m - i * P);
      if (out !== x) out.set(x as never, me * m);
      pipeline.run(call, {
        chunks: Math.ceil(m / P),
        outNeedsReduced: false,
        copyIn(i, slot) {
          view(dtype, layout.slotAt(me, slot), 0, chunkLen(i), width).set(x.subarray(i * P, i * P + chunkLen(i)) as never);
        },
        process(i, slot) {
          for (let r = 0; r < n; r++) {
            if (r !== me) out.set(view(dtype, layout.slotAt(r, slot), 0, chunkLen(i), width) as never, r * m + i * P);
          }
        },
        copyOut() {},
      });
    },

    broadcast(call, x, out, root) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      const P = perChunk(x);
      const chunkLen = (i: number) => Math.min(P, x.length - i * P);
      if (me === root && out !== x) out.set(x as never);
      pipeline.run(call, {
        chunks: Math.ceil(x.length / P),
        outNeedsReduced: false,
        copyIn(i, slot) {
          if (me === root) view(dtype, layout.slotAt(me, slot), 0, chunkLen(i), width).set(x.subarray(i * P, i * P + chunkLen(i)) as never);
        },
        process(i, slot) {
          if (me !== root) out.set(view(dtype, layout.slotAt(root, slot), 0, chunkLen(i), width) as never, i * P);
        },
        copyOut() {},
      });
    },
  };
}
