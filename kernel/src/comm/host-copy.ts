// Copies between a rank's private arrays and the world's shared memory at
// memmove speed.
//
// Why not TypedArray#set: V8 copies into and out of a SharedArrayBuffer
// (a shared WebAssembly.Memory's buffer included) with relaxed-atomic word
// copies, about half the speed of a plain copy. Node's Buffer#copy is a
// native memmove whatever the buffers are, several times faster into shared
// memory (docs/collectives.md, "Figures behind the code").
// A plain memmove is safe here: the shm collectives only copy ranges that
// their counters in shared memory have handed to this rank.
import type { CommArray } from "./types";

const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

/**
 * Bytes below which TypedArray#set is faster: the two Buffer views and Node's checks cost about
 * 0.4 us, more than memmove saves on a few KiB. 4 KiB into a shared memory: set 0.29-0.32 us,
 * Buffer#copy 0.59-0.69 us; 8 KiB 0.58-0.66 against 1.02-1.05 us (Intel Xeon build machine,
 * 2026-12-03; at 64 MiB the two were equal there, while the AMD EPYC one measured set 3x slower).
 */
const SMALL_BYTES = 8192;

/** dst.set(src, at) (same dtype), by memmove when the host has one. */
export function copyElements(dst: CommArray, at: number, src: CommArray): void {
  if (!NodeBuffer || src.byteLength < SMALL_BYTES) {
    dst.set(src as never, at);
    return;
  }
  const offset = at * dst.BYTES_PER_ELEMENT;
  if (offset + src.byteLength > dst.byteLength) throw new RangeError(`copyElements: ${src.length} elements do not fit at ${at} of ${dst.length}`);
  NodeBuffer.from(src.buffer, src.byteOffset, src.byteLength).copy(NodeBuffer.from(dst.buffer, dst.byteOffset + offset, src.byteLength));
}
