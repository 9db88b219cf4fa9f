// The thread world's large allReduce when every rank posted its arrays by
// address (peer-memory.ts): no staging slot and no shared result slot. Each
// rank reduces its slice of each chunk straight from every rank's input into
// its own output, then copies the other ranks' reduced slices out of their
// outputs. Per rank and per byte of input (n ranks, S bytes): reads S/n from
// each of n inputs, writes S/n, copies (n-1) S/n; the path through shared
// memory adds a copy in and a copy out of S each (shm-direct.ts).
//
// Chunks run on the same counter-ordered pipeline (shm-pipeline.ts): a rank
// reduces chunk i once every rank has entered it, and copies peers' slices of
// chunk i once every rank has reduced it, so the copy of one chunk overlaps a
// peer's reduction of the next.
import type { PeerReads, PostedAddresses } from "./peer-memory";
import type { ShmPipeline } from "./shm-pipeline";
import type { CallContext } from "./transport";

/** Bytes a chunk: large, for few waits; several a call, so copies overlap reductions (as REGISTERED_CHUNK_BYTES). */
export const BY_ADDRESS_CHUNK_BYTES = 16 * 1024 * 1024;

export interface ByAddressAllReduce {
  call: CallContext;
  posted: PostedAddresses;
  /** elements a rank, and bytes an element */
  length: number;
  width: number;
  /** 0 float32, 1 float64 (dtype.ts codes, as the addon takes them) */
  dtype: number;
  /** the first element of rank r's slice of a chunk of `len` elements (slices start on cache lines) */
  slice(len: number, r: number): number;
  /** this rank read `bytes` of rank `owner`'s memory (wire counting, shm-direct.ts) */
  readFrom(call: CallContext, owner: number, bytes: number): void;
}

export function allReduceByAddress(pipeline: ShmPipeline, peers: PeerReads, me: number, n: number, a: ByAddressAllReduce): void {
  const { call, posted, length, width, dtype, slice, readFrom } = a;
  const { inputs, outputs } = posted;
  const Q = Math.max(1, Math.floor(BY_ADDRESS_CHUNK_BYTES / width));
  const chunkLen = (i: number) => Math.min(Q, length - i * Q);
  // Summed in rank order on every rank, in place too (the addon reads every source of a block
  // before it writes the block), so results round as the path through shared memory's do.
  const everyRank = Array.from({ length: n }, (_, r) => r);
  pipeline.run(call, {
    chunks: Math.ceil(length / Q),
    outNeedsReduced: true,
    copyIn() {},
    process(i) {
      const len = chunkLen(i);
      const lo = slice(len, me);
      const hi = slice(len, me + 1);
      if (hi <= lo) return;
      const at = (i * Q + lo) * width;
      const sources = everyRank.map((r) => inputs[r]! + at);
      peers.guarded(call, everyRank, () => peers.ops.reduce(dtype, outputs[me]! + at, sources, hi - lo));
      for (let r = 0; r < n; r++) readFrom(call, r, (hi - lo) * width);
    },
    copyOut(i) {
      const len = chunkLen(i);
      for (let r = 0; r < n; r++) {
        const lo = slice(len, r);
        const hi = slice(len, r + 1);
        if (r === me || hi <= lo) continue;
        const at = (i * Q + lo) * width;
        peers.guarded(call, [r], () => peers.ops.copy(outputs[me]! + at, outputs[r]! + at, (hi - lo) * width));
        readFrom(call, r, (hi - lo) * width);
      }
    },
  });
  // Peers read this rank's arrays in place: return only once every rank is past its last copy.
  pipeline.waitForAll(call);
}
