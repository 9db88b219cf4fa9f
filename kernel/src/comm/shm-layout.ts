// Memory layout of a shared-memory world. Everything lives in two shared
// buffers created once on the kernel's main thread and handed to every rank
// thread in workerData:
//
//   control (SharedArrayBuffer, Int32 words)
//     [0] state: 0 running, 1 cancelled by the kernel, 2 aborted by a rank
//     [1] length of the reason text, [64..) reason text (UTF-8, 1 KiB)
//     [2] registered memory in use, in 64-byte units (shm-heap.ts's bump pointer)
//     per rank r, 32 words at RANK_BASE + 32 r (two 64-byte cache lines):
//       +0 doorbell (bumped and notified whenever something for r changes)
//       +1 posted, +2 reduced, +3 consumed  (direct-path chunk counters, see shm-pipeline.ts)
//       +4 sequence word of the descriptor at +8 (descriptor.ts postDescriptor), +5 which of the call's arrays are registered memory,
//       +6 / +7 their byte addresses (input / output), +8..15 descriptor of the current collective
//       +16 the oldest point-to-point call r is waiting in: 0 none, 1 send, 2 recv; +17 its peer
//       (world rank), +18 its number (send #n to / recv #n from that peer), for a timeout's blame
//       +19 the call whose arrays r posted by address, +20 r is reading peers' arrays (peer-memory.ts),
//       +21/22 and +23/24 those input and output addresses (low, high), +25 their byte length
//     per channel c (src -> dst, src != dst, 2 contexts), 32 words at CHANNEL_BASE + 32 c:
//       +0 bytes written (mod 2^32), +16 bytes read: writer and reader on separate lines
//   data (a shared WebAssembly.Memory, so reduction kernels work on it in place)
//     channel rings, then the direct path's slots (slotBytes each): SLOTS staging
//     slots per rank, SLOTS shared result slots, one scratch slot per rank;
//     from registeredAt (page-aligned), registered memory, grown on demand.
import type { WasmMemory } from "./wasm-api";

export const STATE = 0;
export const REASON_LEN = 1;
export const HEAP_TOP = 2;
export const REASON_AT_WORD = 64;
export const REASON_BYTES = 1024;
export const RANK_BASE = REASON_AT_WORD + REASON_BYTES / 4;
export const RANK_WORDS = 32;
export const DOORBELL = 0;
export const POSTED = 1;
export const REDUCED = 2;
export const CONSUMED = 3;
/** sequence word of the rank's posted descriptor (descriptor.ts postDescriptor): even = whole, 0 = none yet */
export const ENTERED = 4;
export const REGISTERED_FLAGS = 5;
export const REGISTERED_INPUT_AT = 6;
export const REGISTERED_OUTPUT_AT = 7;
export const DESCRIPTOR_AT = 8;
export const USER_OP_KIND = 16;
export const USER_OP_PEER = 17;
export const USER_OP_CALL = 18;
/** peer-memory.ts: the call whose arrays this rank has posted by address (0: none); 1 while it reads peers' */
export const PEER_PRESENT = 19;
export const PEER_BUSY = 20;
/** peer-memory.ts: the posted input and output addresses (two words each, low then high) and byte length */
export const PEER_INPUT_AT = 21;
export const PEER_OUTPUT_AT = 23;
export const PEER_BYTES = 25;
export const CHANNEL_WORDS = 32;
export const WRITTEN = 0;
export const READ = 16;

export const COLLECTIVE_CONTEXT = 0;
export const USER_CONTEXT = 1;

export interface ShmWorldInit {
  readonly kind: "shm";
  readonly size: number;
  readonly control: SharedArrayBuffer;
  readonly memory: WasmMemory;
  /** bytes per collective channel ring (power of two) */
  readonly collectiveRingBytes: number;
  /** bytes per user point-to-point channel ring (power of two) */
  readonly userRingBytes: number;
  /** bytes per direct-path staging slot */
  readonly slotBytes: number;
  /** byte offset in memory where registered memory starts (after the fixed layout, page-aligned) */
  readonly registeredAt: number;
  /** most bytes of registered memory the world can hand out (the memory's maximum minus registeredAt) */
  readonly registeredBytes: number;
  /** what each rank read of each other rank's memory on the direct path (wire-counters.ts SharedReadCounts) */
  readonly directReads: SharedArrayBuffer;
  /** when each rank's emulated ingress is free again (link.ts SharedIngress) */
  readonly ingressClocks: SharedArrayBuffer;
  /** how long a waiting rank polls before it sleeps, milliseconds, while ranks do not outnumber cores (shm-transport.ts) */
  readonly spinMs: number;
}

export interface ShmWorldOptions {
  collectiveRingBytes?: number;
  userRingBytes?: number;
  slotBytes?: number;
  /** capacity of registered memory (comm.alloc), bytes; default 2 GiB, at most what 4 GiB of memory leaves */
  registeredBytes?: number;
  /** how long a waiting rank polls before it sleeps, milliseconds, while ranks do not outnumber cores; default 1 */
  spinMs?: number;
}

export const MAX_SHM_RANKS = 64;
/** Direct-path chunks in flight: chunk g uses slot g % SLOTS, so copy-in of g+1 overlaps the reduction of g. */
export const SLOTS = 4;

export class ShmLayout {
  readonly channelsPerContext: number;
  readonly channelBase: number;
  readonly controlWords: number;
  readonly dataBytes: number;
  readonly slotsAt: number;
  readonly resultsAt: number;
  readonly scratchAt: number;

  constructor(
    readonly size: number,
    readonly collectiveRingBytes: number,
    readonly userRingBytes: number,
    readonly slotBytes: number,
  ) {
    this.channelsPerContext = size * (size - 1);
    this.channelBase = RANK_BASE + RANK_WORDS * size;
    this.controlWords = this.channelBase + CHANNEL_WORDS * 2 * this.channelsPerContext;
    this.slotsAt = this.channelsPerContext * (collectiveRingBytes + userRingBytes);
    this.resultsAt = this.slotsAt + SLOTS * size * slotBytes;
    this.scratchAt = this.resultsAt + SLOTS * slotBytes;
    this.dataBytes = this.scratchAt + size * slotBytes;
  }

  static of(init: ShmWorldInit): ShmLayout {
    return new ShmLayout(init.size, init.collectiveRingBytes, init.userRingBytes, init.slotBytes);
  }

  rankWord(rank: number, field: number): number {
    return RANK_BASE + RANK_WORDS * rank + field;
  }

  channelIndex(context: number, src: number, dst: number): number {
    const pair = src * (this.size - 1) + (dst < src ? dst : dst - 1);
    return context * this.channelsPerContext + pair;
  }

  channelWord(channel: number, field: number): number {
    return this.channelBase + CHANNEL_WORDS * channel + field;
  }

  ringBytes(context: number): number {
    return context === COLLECTIVE_CONTEXT ? this.collectiveRingBytes : this.userRingBytes;
  }

  /** byte offset of a channel's ring in data memory */
  ringAt(channel: number): number {
    const perContext = this.channelsPerContext;
    return channel < perContext
      ? channel * this.collectiveRingBytes
      : perContext * this.collectiveRingBytes + (channel - perContext) * this.userRingBytes;
  }

  /** byte offset of rank r's direct staging slot b (0 <= b < SLOTS) */
  slotAt(rank: number, b: number): number {
    return this.slotsAt + (SLOTS * rank + b) * this.slotBytes;
  }

  /** byte offset of shared result slot b (0 <= b < SLOTS) */
  resultAt(b: number): number {
    return this.resultsAt + b * this.slotBytes;
  }

  /** byte offset of rank r's private scratch slot (whole-chunk reductions of the small path) */
  scratchFor(rank: number): number {
    return this.scratchAt + rank * this.slotBytes;
  }
}
