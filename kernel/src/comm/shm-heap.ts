// Registered memory of a shm world: arrays that live in the world's shared
// WebAssembly memory, after the channel rings and staging slots, so every
// rank thread can read them in place. The direct collectives reduce peers'
// registered inputs without copying them into staging slots first and write
// results straight into registered outputs (see shm-direct.ts), as NCCL does
// for buffers from ncclMemAlloc.
//
// Allocation is a bump pointer shared by the world's ranks (one control word,
// in 64-byte units, so a block never shares a cache line with another), plus
// a per-rank free list of exact sizes: a training loop that frees and
// allocates the same shapes reuses its blocks. Memory comes back only when
// the world ends.
import { checkAllocArguments, type RegisteredMemory, type TypedArrayConstructor } from "./registered-memory";
import { HEAP_TOP, type ShmWorldInit } from "./shm-layout";
import type { CommArray } from "./types";

const PAGE = 64 * 1024;
const LINE = 64;

export class ShmHeap implements RegisteredMemory {
  private readonly ctl: Int32Array;
  /** byte offset where registered blocks start: the end of the world's fixed data */
  private readonly base: number;
  /** byte offset where registered blocks must end: the memory's maximum */
  private readonly limit: number;
  /** memory.buffer objects this thread has seen; views of any of them address the same memory */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** block bytes -> addresses this rank freed */
  private readonly freeBlocks = new Map<number, number[]>();
  /** address -> block bytes of this rank's live blocks */
  private readonly live = new Map<number, number>();

  constructor(
    private readonly init: ShmWorldInit,
    private readonly rank: number,
  ) {
    this.ctl = new Int32Array(init.control);
    this.base = init.registeredAt;
    this.limit = init.registeredAt + init.registeredBytes;
  }

  alloc<T extends CommArray>(ctor: TypedArrayConstructor<T>, length: number): T {
    checkAllocArguments(ctor, length);
    const blockBytes = Math.max(LINE, Math.ceil((length * ctor.BYTES_PER_ELEMENT) / LINE) * LINE);
    const reused = this.freeBlocks.get(blockBytes)?.pop();
    const address = reused ?? this.claim(blockBytes);
    this.live.set(address, blockBytes);
    const buffer = this.currentBuffer();
    const array = new ctor(buffer, address, length);
    if (reused !== undefined) array.fill(0 as never);
    return array;
  }

  free(array: CommArray): void {
    const blockBytes = this.holds(array) ? this.live.get(array.byteOffset) : undefined;
    if (blockBytes === undefined) {
      throw new TypeError(`free: rank ${this.rank} got an array that its alloc() did not return (or that was freed already)`);
    }
    this.live.delete(array.byteOffset);
    const list = this.freeBlocks.get(blockBytes) ?? [];
    list.push(array.byteOffset);
    this.freeBlocks.set(blockBytes, list);
  }

  holds(array: CommArray): boolean {
    return array.byteOffset >= this.base && (array.buffer === this.init.memory.buffer || this.buffers.has(array.buffer));
  }

  /** Takes `bytes` from the world's bump pointer and grows the memory to cover them. */
  private claim(bytes: number): number {
    const units = bytes / LINE;
    const start = this.base + Atomics.add(this.ctl, HEAP_TOP, units) * LINE;
    const end = start + bytes;
    if (end > this.limit) {
      Atomics.sub(this.ctl, HEAP_TOP, units);
      const usedMiB = (start - this.base) / 2 ** 20;
      throw new RangeError(
        `alloc: rank ${this.rank} asked for ${bytes} bytes; the world's registered memory has ${((this.limit - start) / 2 ** 20).toFixed(1)} MiB ` +
          `left of ${(this.init.registeredBytes / 2 ** 20).toFixed(0)} MiB (${usedMiB.toFixed(1)} MiB in use; free() returns blocks)`,
      );
    }
    const memory = this.init.memory as { buffer: SharedArrayBuffer; grow(pages: number): number };
    // Ranks grow concurrently: each grows by what it still misses, so the memory may end up a
    // little larger than needed, never smaller.
    while (memory.buffer.byteLength < end) {
      try {
        memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE));
      } catch (error) {
        if (memory.buffer.byteLength < end) throw error;
      }
    }
    return start;
  }

  private currentBuffer(): ArrayBufferLike {
    const buffer = this.init.memory.buffer;
    this.buffers.add(buffer);
    return buffer;
  }
}
