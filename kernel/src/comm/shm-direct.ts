// The same-host fast paths between rank threads ("direct"): threads share
// memory, so instead of passing blocks around a ring through channels, each
// rank copies its input once into its own staging slot and every rank reads
// the others' slots in place. Chunks run on the counter-ordered pipeline of
// shm-pipeline.ts; reductions are WebAssembly SIMD kernels that work on the
// world's shared WebAssembly.Memory directly.
//
// Per rank and per byte of input (n ranks, S bytes):
//   allReduce      copy in S, reduce S/n from n slots into the shared result, copy out S
//                  (small messages: reduce all S into a private scratch slot, one wait);
//                  registered input: no copy in, peers read it in place; registered
//                  output: the rank's reduced slice goes straight into it and peers
//                  copy from it (WebAssembly memory.copy, full speed)
//   reduceScatter  copy in S, reduce S/n from n slots, copy out S/n
//   allGather      copy in S, copy out n S
//   broadcast      root copies in S, the others copy out S
// (reduceScatter, allGather, broadcast: a registered input is read in place,
// with no copy in; copies between registered arrays use memory.copy)
import { blockStart, viewOf } from "./dtype";
import { copyElements } from "./host-copy";
import type { PeerReads } from "./peer-memory";
import { jsKernels, type ReduceKernels } from "./reduce-wasm";
import type { RegisteredMemory } from "./registered-memory";
import { REGISTERED_FLAGS, REGISTERED_INPUT_AT, REGISTERED_OUTPUT_AT } from "./shm-layout";
import { callLabel } from "./descriptor";
import { allReduceByAddress } from "./shm-direct-by-address";
import { metered } from "./shm-direct-metered";
import { ShmPipeline } from "./shm-pipeline";
import { STATE_CANCELLED, type ShmTransport } from "./shm-transport";
import type { CallContext } from "./transport";
import type { CommArray } from "./types";
import type { MemoryCopy } from "./wasm-copy";
import type { SharedReadCounts } from "./wire-counters";

const INPUT_REGISTERED = 1;
const OUTPUT_REGISTERED = 2;
/** where a rank's input or output of the current call is: an address in registered memory, or NOT_REGISTERED */
const NOT_REGISTERED = -1;

/** Chunk bytes of an allReduce whose inputs and outputs are all registered (no staging slot bounds it). */
const REGISTERED_CHUNK_BYTES = 16 * 1024 * 1024;

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
  registered?: RegisteredMemory,
  memoryCopy?: MemoryCopy,
  reads?: SharedReadCounts,
  peers?: PeerReads,
): DirectCollectives {
  const { layout, rank: me, size: n, ctl } = t;
  /**
   * Wire counting: this rank read `bytes` of rank `owner`'s memory (its staging slot, registered
   * array, or its slice of the shared result) in one piece. Received here; the owner's sent count
   * is its row of the shared matrix. Reading this rank's own memory is no traffic.
   */
  const readFrom = (call: CallContext, owner: number, bytes: number) => {
    if (owner === me || bytes <= 0) return;
    t.wire.received(call, owner, bytes, 1);
    reads?.add(owner, me, call.desc.opcode, bytes, 1);
  };
  const pipeline = new ShmPipeline(t);
  const kernelsFor = (redop: number, dtype: number) => (simd ?? jsKernels)(redop, dtype);
  // Registering memory grows the memory, which replaces its buffer object: views of registered
  // memory read memory.buffer (a call into the engine, about 3% of a 4 KiB call) to cover it. The
  // fixed layout (slots, result and scratch areas) lies in the memory's initial pages, which every
  // buffer object of it covers, so its views share the first one.
  const memory = t.init.memory;
  const fixedLayout = memory.buffer;
  /** typed view of `len` elements at element offset `at` of a slot (or area of the fixed layout) that starts at byte `slotAt` */
  const view = (dtype: number, slotAt: number, at: number, len: number, width: number) => viewOf(dtype, fixedLayout, slotAt + at * width, len);
  /** typed view of `len` elements at byte address `address` of the world's memory */
  const viewAt = (dtype: number, address: number, len: number) => viewOf(dtype, memory.buffer, address, len);
  const isRegistered = (x: CommArray) => registered?.holds(x) ?? false;

  const inMemory = (x: CommArray) => x.buffer === fixedLayout || isRegistered(x) || x.buffer === memory.buffer;
  /** dst.set(src, at), by memory.copy when both live in the world's memory, else as host-copy.ts copies (memmove from 8 KiB) */
  const copyInto = (dst: CommArray, at: number, src: CommArray) => {
    if (memoryCopy && src.byteLength > 0 && inMemory(dst) && inMemory(src)) {
      memoryCopy(dst.byteOffset + at * dst.BYTES_PER_ELEMENT, src.byteOffset, src.byteLength);
    } else {
      copyElements(dst, at, src);
    }
  };

  /**
   * Tells peers where this rank's input and output of the call are. The flags word holds
   * call * 4 + flags, so it only grows and a peer's word for this call is recognisable (call
   * numbers stay below 2^29). Written before the call's first chunk is posted, whose doorbell
   * tells the peers; `ring` wakes them now, for a plan that waits on the announcements themselves.
   * (An early wake-up would make a waiting peer look at this rank while it has entered the call
   * but posted nothing yet.)
   */
  const announceAddresses = (call: CallContext, x: CommArray, out: CommArray, ring = false): void => {
    const flags = (isRegistered(x) ? INPUT_REGISTERED : 0) | (isRegistered(out) ? OUTPUT_REGISTERED : 0);
    Atomics.store(ctl, layout.rankWord(me, REGISTERED_INPUT_AT), flags & INPUT_REGISTERED ? x.byteOffset | 0 : 0);
    Atomics.store(ctl, layout.rankWord(me, REGISTERED_OUTPUT_AT), flags & OUTPUT_REGISTERED ? out.byteOffset | 0 : 0);
    const word = call.desc.call * 4 + flags;
    if (ring) pipeline.publish(REGISTERED_FLAGS, word);
    else Atomics.store(ctl, layout.rankWord(me, REGISTERED_FLAGS), word);
  };

  /**
   * Every rank's input and output address for this call (NOT_REGISTERED: its staging slot /
   * the shared result slot), once every rank has announced (posted its first chunk). A peer whose
   * word is already past this call was not registered in it: a registered rank leaves a call
   * only once every rank is done with it.
   */
  const announcedAddresses = (call: CallContext): { inputs: number[]; outputs: number[] } => {
    const stamp = call.desc.call * 4;
    const inputs: number[] = [];
    const outputs: number[] = [];
    for (let r = 0; r < n; r++) {
      const word = Atomics.load(ctl, layout.rankWord(r, REGISTERED_FLAGS));
      const flags = word >= stamp && word < stamp + 4 ? word - stamp : 0;
      inputs[r] = flags & INPUT_REGISTERED ? Atomics.load(ctl, layout.rankWord(r, REGISTERED_INPUT_AT)) >>> 0 : NOT_REGISTERED;
      outputs[r] = flags & OUTPUT_REGISTERED ? Atomics.load(ctl, layout.rankWord(r, REGISTERED_OUTPUT_AT)) >>> 0 : NOT_REGISTERED;
    }
    return { inputs, outputs };
  };

  /** announceAddresses, then waits for every rank's announcement: for plans that depend on the peers' arrays. */
  const exchangeAddresses = (call: CallContext, x: CommArray, out: CommArray): { inputs: number[]; outputs: number[] } => {
    announceAddresses(call, x, out, true);
    pipeline.waitAll(call, REGISTERED_FLAGS, call.desc.call * 4);
    return announcedAddresses(call);
  };

  /** dst = op over ranks of the `len` elements at element `at` of every rank's staging slot `slot` */
  const reduceSlots = (k: ReduceKernels, dst: CommArray, dtype: number, slot: number, at: number, len: number, width: number) => {
    const src = (r: number) => view(dtype, layout.slotAt(r, slot), at, len, width);
    if (n === 1) return dst.set(src(0) as never);
    k.combine(dst, src(0), src(1));
    for (let r = 2; r < n; r++) k.reduce(dst, src(r));
  };

  const perChunk = (x: CommArray) => Math.floor(layout.slotBytes / x.BYTES_PER_ELEMENT);

  /**
   * An array whose memory went away between the call and its turn to run (transferred, or a wasm
   * heap that grew under a view of it) reads as empty: stop the world naming this rank, so no peer
   * waits for it or reads where its memory was.
   */
  const refuseDetached = (call: CallContext, x: CommArray, out: CommArray) => {
    if (call.desc.count === 0 || (x.length === call.desc.count && out.length === call.desc.count)) return;
    t.abort(STATE_CANCELLED, `rank ${me}: the array given to ${callLabel(call.desc)} was detached before the call ran (transferred, or a WebAssembly heap that grew under it)`);
    t.checkState(call);
  };

  /** allReduce above ONE_SHOT_BYTES: chunks reduced slice by slice, every rank its own slice. */
  const allReduceLarge = (call: CallContext, x: CommArray, out: CommArray, k: ReduceKernels, byAddress: boolean) => {
    const { dtype } = call.desc;
    const width = x.BYTES_PER_ELEMENT;
    const P = perChunk(x);
    // slices of a chunk start on 64-byte lines, so no two ranks write one cache line of the result
    const unit = Math.max(1, 64 / width);
    const slice = (len: number, r: number) => Math.min(len, blockStart(r, Math.ceil(len / unit), n) * unit);
    const { inputs, outputs } = exchangeAddresses(call, x, out);
    // With every array registered no slot is used, so chunks can be larger than a slot: fewer
    // waits. One whole-array chunk would lose the overlap of reduce and copy-out (the chunk-size
    // sweep: docs/collectives.md, "Figures behind the code").
    const allRegistered = !inputs.includes(NOT_REGISTERED) && !outputs.includes(NOT_REGISTERED);
    const posted = byAddress && !allRegistered ? peers!.postedByAll(call, x.byteLength) : undefined;
    if (posted) return allReduceByAddress(pipeline, peers!, me, n, { call, posted, length: x.length, width, dtype, slice, readFrom });
    const copyIn = (i: number, slot: number) => {
      const len = Math.min(P, x.length - i * P);
      copyInto(view(dtype, layout.slotAt(me, slot), 0, len, width), 0, x.subarray(i * P, i * P + len));
    };
    const inputRegistered = inputs[me] !== NOT_REGISTERED;
    const outputRegistered = outputs[me] !== NOT_REGISTERED;
    const anyOutputRegistered = outputs.some((a) => a !== NOT_REGISTERED);
    const Q = allRegistered ? Math.max(P, Math.floor(REGISTERED_CHUNK_BYTES / width)) : P;
    const chunkLenQ = (i: number) => Math.min(Q, x.length - i * Q);
    const inPlace = inputRegistered && outputRegistered && x.byteOffset === out.byteOffset;
    /** rank r's elements [lo, hi) of chunk i (slot `slot`): in place in its registered input, or its staging slot */
    const input = (r: number, i: number, slot: number, lo: number, hi: number) =>
      inputs[r] === NOT_REGISTERED ? view(dtype, layout.slotAt(r, slot), lo, hi - lo, width) : viewAt(dtype, inputs[r] + (i * Q + lo) * width, hi - lo);
    /** where rank r's reduced slice [lo, hi) of chunk i is: its registered output, or the shared result slot */
    const result = (r: number, i: number, slot: number, lo: number, hi: number) =>
      outputs[r] === NOT_REGISTERED ? view(dtype, layout.resultAt(slot), lo, hi - lo, width) : viewAt(dtype, outputs[r] + (i * Q + lo) * width, hi - lo);
    pipeline.run(call, {
      chunks: Math.ceil(x.length / Q),
      outNeedsReduced: true,
      copyIn(i, slot) {
        if (!inputRegistered) copyIn(i, slot);
      },
      process(i, slot) {
        const len = chunkLenQ(i);
        const lo = slice(len, me);
        const hi = slice(len, me + 1);
        if (hi <= lo) return;
        const dst = result(me, i, slot, lo, hi);
        if (n === 1) {
          if (!inPlace) copyInto(dst, 0, input(me, i, slot, lo, hi));
          return;
        }
        // In place, dst is this rank's own input: read it first, before the first write.
        const first = inPlace ? me : 0;
        const second = first === 0 ? 1 : 0;
        k.combine(dst, input(first, i, slot, lo, hi), input(second, i, slot, lo, hi));
        for (let r = 0; r < n; r++) if (r !== first && r !== second) k.reduce(dst, input(r, i, slot, lo, hi));
        for (let r = 0; r < n; r++) readFrom(call, r, (hi - lo) * width);
      },
      copyOut(i, slot) {
        const len = chunkLenQ(i);
        if (!anyOutputRegistered) {
          copyInto(out, i * Q, view(dtype, layout.resultAt(slot), 0, len, width));
          // the result slot holds each rank's reduced slice, written by that rank
          for (let r = 0; r < n; r++) readFrom(call, r, (slice(len, r + 1) - slice(len, r)) * width);
          return;
        }
        for (let r = 0; r < n; r++) {
          const lo = slice(len, r);
          const hi = slice(len, r + 1);
          if (hi > lo && !(r === me && outputRegistered)) {
            copyInto(out, i * Q + lo, result(r, i, slot, lo, hi));
            readFrom(call, r, (hi - lo) * width);
          }
        }
      },
    });
    // Peers read this rank's registered arrays in place: return (and let the caller change them)
    // only once every rank is past its last copy.
    if (inputRegistered || outputRegistered) pipeline.waitForAll(call);
  };

  const collectives: DirectCollectives = {
    allReduce(call, x, out, redop) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      refuseDetached(call, x, out);
      const k = kernelsFor(redop, dtype);
      const P = perChunk(x);
      const chunkLen = (i: number) => Math.min(P, x.length - i * P);
      const copyIn = (i: number, slot: number) => {
        copyInto(view(dtype, layout.slotAt(me, slot), 0, chunkLen(i), width), 0, x.subarray(i * P, i * P + chunkLen(i)));
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
            for (let r = 0; r < n; r++) readFrom(call, r, x.byteLength);
            copyInto(out, 0, scratch);
          },
          copyOut() {},
        });
      }
      // float sums (and means, summed here) of a plain array: peers may read it by address instead
      const byAddress = peers !== undefined && n >= 2 && dtype <= 1 && redop <= 1;
      if (byAddress) peers.post(call, x, out);
      try {
        allReduceLarge(call, x, out, k, byAddress);
      } finally {
        if (byAddress) peers.leave();
      }
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
      announceAddresses(call, x, out);
      const inputRegistered = isRegistered(x);
      let inputs: number[] = [];
      pipeline.run(call, {
        chunks: Math.ceil(longest / q),
        outNeedsReduced: false,
        copyIn(i, slot) {
          if (inputRegistered) return;
          for (let r = 0; r < n; r++) {
            const [lo, hi] = piece(r, i);
            if (hi > lo) copyInto(view(dtype, layout.slotAt(me, slot), r * q, hi - lo, width), 0, x.subarray(lo, hi));
          }
        },
        process(i, slot) {
          if (i === 0) inputs = announcedAddresses(call).inputs;
          const [lo, hi] = piece(me, i);
          if (hi <= lo) return;
          const src = (r: number) =>
            inputs[r] === NOT_REGISTERED ? view(dtype, layout.slotAt(r, slot), me * q, hi - lo, width) : viewAt(dtype, inputs[r] + lo * width, hi - lo);
          // straight into a registered output; through the scratch slot into a plain one
          const dst = inMemory(out) ? viewAt(dtype, out.byteOffset + (lo - start(me)) * width, hi - lo) : view(dtype, layout.scratchFor(me), 0, hi - lo, width);
          if (n === 1) copyInto(dst, 0, src(0));
          else {
            k.combine(dst, src(0), src(1));
            for (let r = 2; r < n; r++) k.reduce(dst, src(r));
          }
          for (let r = 0; r < n; r++) readFrom(call, r, (hi - lo) * width);
          if (!inMemory(out)) copyInto(out, lo - start(me), dst);
        },
        copyOut() {},
      });
      if (inputRegistered) pipeline.waitForAll(call);
    },

    allGather(call, x, out) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      const m = x.length;
      const P = perChunk(x);
      const chunkLen = (i: number) => Math.min(P, m - i * P);
      if (out !== x) copyInto(out, me * m, x);
      announceAddresses(call, x, out);
      const inputRegistered = isRegistered(x);
      let inputs: number[] = [];
      pipeline.run(call, {
        chunks: Math.ceil(m / P),
        outNeedsReduced: false,
        copyIn(i, slot) {
          if (!inputRegistered) copyInto(view(dtype, layout.slotAt(me, slot), 0, chunkLen(i), width), 0, x.subarray(i * P, i * P + chunkLen(i)));
        },
        process(i, slot) {
          if (i === 0) inputs = announcedAddresses(call).inputs;
          for (let r = 0; r < n; r++) {
            if (r === me) continue;
            const src = inputs[r] === NOT_REGISTERED ? view(dtype, layout.slotAt(r, slot), 0, chunkLen(i), width) : viewAt(dtype, inputs[r] + i * P * width, chunkLen(i));
            copyInto(out, r * m + i * P, src);
            readFrom(call, r, chunkLen(i) * width);
          }
        },
        copyOut() {},
      });
      if (inputRegistered) pipeline.waitForAll(call);
    },

    broadcast(call, x, out, root) {
      const { dtype } = call.desc;
      const width = x.BYTES_PER_ELEMENT;
      const P = perChunk(x);
      const chunkLen = (i: number) => Math.min(P, x.length - i * P);
      if (me === root && out !== x) copyInto(out, 0, x);
      announceAddresses(call, x, out);
      const rootRegistered = me === root && isRegistered(x);
      let rootInput = NOT_REGISTERED;
      pipeline.run(call, {
        chunks: Math.ceil(x.length / P),
        outNeedsReduced: false,
        copyIn(i, slot) {
          if (me === root && !rootRegistered) copyInto(view(dtype, layout.slotAt(me, slot), 0, chunkLen(i), width), 0, x.subarray(i * P, i * P + chunkLen(i)));
        },
        process(i, slot) {
          if (me === root) return;
          if (i === 0) rootInput = announcedAddresses(call).inputs[root]!;
          const src = rootInput === NOT_REGISTERED ? view(dtype, layout.slotAt(root, slot), 0, chunkLen(i), width) : viewAt(dtype, rootInput + i * P * width, chunkLen(i));
          copyInto(out, i * P, src);
          readFrom(call, root, chunkLen(i) * width);
        },
        copyOut() {},
      });
      if (rootRegistered) pipeline.waitForAll(call);
    },
  };
  return metered(collectives, t, reads);
}
