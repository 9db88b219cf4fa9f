/**
 * Reading other rank threads' arrays by address (kernel/native/peer-memory.cc),
 * for the thread world's direct allReduce (shm-direct-by-address.ts), and
 * summing in place wherever arrays are (the ring's receive side, addressSum).
 *
 * Rank threads share one address space, so once a rank posts where its input
 * and output are, a peer can reduce straight from a plain Float32Array that
 * JavaScript could only reach by copying it into shared memory first. The
 * addon does the reading; this file holds the rules that keep it safe:
 *
 *   - A rank posts its addresses (and its byte length) under a PRESENT word set
 *     to the call number, and clears it when it leaves the call, normally or by
 *     an error. A peer reads another rank's memory only between marking itself
 *     BUSY and seeing that rank still PRESENT in the call; a leaving rank clears
 *     PRESENT, then waits until no peer is BUSY. With sequentially consistent
 *     atomics one of the two always sees the other (the reader sees PRESENT
 *     gone and reads nothing, or the leaver sees BUSY and waits the few
 *     milliseconds one chunk takes), so an array is never read after its call
 *     returned and its owner could drop it.
 *   - Lengths are the call's own, checked by the descriptor agreement before
 *     the first chunk, and against every peer's posted byte length here.
 *
 * Environment: DISTLAB_PEER_MEMORY=off keeps the copies through shared memory
 * (for comparison, or a platform where the addon misbehaves).
 */
import * as path from "node:path";
import { CommCancelledError } from "./comm-errors";
import { addonOnce, addonSetting } from "../native-addons";
import { callLabel } from "./descriptor";
import type { CallContext } from "./transport";
import type { CommArray } from "./types";
import { PEER_BUSY, PEER_BYTES, PEER_INPUT_AT, PEER_OUTPUT_AT, PEER_PRESENT, type ShmLayout } from "./shm-layout";

/** What kernel/native/peer-memory.cc exports. Addresses are numbers (user-space addresses are below 2^53). */
export interface PeerMemoryOps {
  address(x: CommArray): number;
  /** dst = sources[0] + sources[1] + ..., left to right; dtype 0 float32, 1 float64 */
  reduce(dtype: number, dst: number, sources: number[], count: number): void;
  copy(dst: number, src: number, bytes: number): void;
  /** faults in the pages of [address, address + bytes) for writing, contents unchanged; false where the OS cannot (then touch them) */
  populate(address: number, bytes: number): boolean;
}

/** Where `npm run setup` builds the addon (kernel/native/build), from src/comm or dist/comm alike. */
export const PEER_MEMORY_ADDON = path.join(__dirname, "..", "..", "native", "build", "peer-memory.node");

/** The addon on this thread, or undefined where it was not built, cannot load, or DISTLAB_PEER_MEMORY=off. */
export const peerMemoryOps = addonOnce<PeerMemoryOps>(PEER_MEMORY_ADDON, (env) => addonSetting(env, "DISTLAB_PEER_MEMORY", ["on", "off"] as const) !== "off");

/** Faults in a shared block's pages for writing with one system call (the result pool's new blocks), or undefined where the addon is not loaded. */
export function blockPopulator(ops = peerMemoryOps()): ((block: SharedArrayBuffer) => boolean) | undefined {
  return ops && ((block) => ops.populate(ops.address(new Uint8Array(block)), block.byteLength));
}

/**
 * dst = a + src element-wise, for arrays anywhere (dst may be a), summed by the addon in place: the
 * ring's receive-side reduction without the copies into and out of WebAssembly memory that the
 * SIMD kernels need (wasm-combine.ts). dtype 0 float32, 1 float64; sums and means (summed) only.
 */
export function addressSum(ops: PeerMemoryOps, dtype: number): (dst: CommArray, a: CommArray, src: CommArray) => void {
  return (dst, a, src) => {
    if (src.length > 0) ops.reduce(dtype, ops.address(dst), [ops.address(a), ops.address(src)], src.length);
  };
}

/** Every rank's posted input and output address of one call. */
export interface PostedAddresses {
  inputs: number[];
  outputs: number[];
}

/** A double from two Int32 words (low, high) and back: addresses stay below 2^53. */
const HIGH = 2 ** 32;
const storeAddress = (ctl: Int32Array, at: number, address: number) => {
  Atomics.store(ctl, at, address % HIGH | 0);
  Atomics.store(ctl, at + 1, Math.floor(address / HIGH));
};
const loadAddress = (ctl: Int32Array, at: number) => (Atomics.load(ctl, at) >>> 0) + Atomics.load(ctl, at + 1) * HIGH;

/** One rank's side of the PRESENT / BUSY protocol over the world's control words. */
export class PeerReads {
  constructor(
    readonly ops: PeerMemoryOps,
    private readonly ctl: Int32Array,
    private readonly layout: ShmLayout,
    private readonly me: number,
    private readonly size: number,
  ) {}

  /** Posts this rank's input and output of `call` for peers to read; before the call's address exchange. */
  post(call: CallContext, x: CommArray, out: CommArray): void {
    const { ctl, layout, me } = this;
    storeAddress(ctl, layout.rankWord(me, PEER_INPUT_AT), this.ops.address(x));
    storeAddress(ctl, layout.rankWord(me, PEER_OUTPUT_AT), this.ops.address(out));
    Atomics.store(ctl, layout.rankWord(me, PEER_BYTES), x.byteLength | 0);
    Atomics.store(ctl, layout.rankWord(me, PEER_PRESENT), call.desc.call);
  }

  /**
   * Every rank's addresses once every rank has announced the call (after the address exchange), or
   * undefined when some rank did not post them (then no rank reads by address: each sees the same
   * words). A posted byte length other than this rank's is a mismatch the descriptors missed.
   */
  postedByAll(call: CallContext, bytes: number): PostedAddresses | undefined {
    const { ctl, layout } = this;
    const inputs: number[] = [];
    const outputs: number[] = [];
    for (let r = 0; r < this.size; r++) {
      if (Atomics.load(ctl, layout.rankWord(r, PEER_PRESENT)) !== call.desc.call) return undefined;
      const posted = Atomics.load(ctl, layout.rankWord(r, PEER_BYTES));
      if (posted !== (bytes | 0)) throw new RangeError(`${callLabel(call.desc)}: rank ${r} posted ${posted >>> 0} bytes, this rank ${bytes}`);
      inputs.push(loadAddress(ctl, layout.rankWord(r, PEER_INPUT_AT)));
      outputs.push(loadAddress(ctl, layout.rankWord(r, PEER_OUTPUT_AT)));
    }
    return { inputs, outputs };
  }

  /** Runs `read` (which reads the given ranks' posted arrays) while they are certainly still in `call`. */
  guarded(call: CallContext, owners: readonly number[], read: () => void): void {
    const { ctl, layout, me } = this;
    const busy = layout.rankWord(me, PEER_BUSY);
    Atomics.store(ctl, busy, 1);
    try {
      for (const r of owners) {
        if (r !== me && Atomics.load(ctl, layout.rankWord(r, PEER_PRESENT)) !== call.desc.call) {
          throw new CommCancelledError(me, callLabel(call.desc), `rank ${r} left the call before this rank read its array`);
        }
      }
      read();
    } finally {
      Atomics.store(ctl, busy, 0);
    }
  }

  /** Withdraws this rank's addresses, then waits until no peer is inside a read (one chunk at most). */
  leave(): void {
    const { ctl, layout, me } = this;
    Atomics.store(ctl, layout.rankWord(me, PEER_PRESENT), 0);
    for (let r = 0; r < this.size; r++) {
      if (r === me) continue;
      const busy = layout.rankWord(r, PEER_BUSY);
      // Nobody notifies this word: poll it; a read in progress is one chunk of memory bandwidth.
      while (Atomics.load(ctl, busy) !== 0) Atomics.wait(ctl, busy, 1, 0.05);
    }
  }
}
