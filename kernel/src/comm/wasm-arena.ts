// A rank's private WebAssembly memory for the channel algorithms (ring,
// recursive doubling, rhd over tcp or shm channels). Layout:
//   [0, 1 MiB)      scratch: a piece of a reduction's source copied in
//   [1 MiB, 2 MiB)  landing: where a socket reads incoming pieces that are reduced at once
//   [2 MiB, ...)    view(): an accumulator (rhd, recursive doubling)
// The SIMD kernels (about 15x the plain loop) only reach this memory. The
// ring reduces elsewhere (wasm-combine.ts).
import { viewOf } from "./dtype";
import type { Reducer } from "./reduce-js";
import { wasmKernels, type ReduceKernels } from "./reduce-wasm";
import type { CommArray } from "./types";
import { Wasm, type WasmMemory } from "./wasm-api";

const PAGE = 64 * 1024;
/** bytes of each of the two areas before the accumulator */
const AREA_BYTES = 1024 * 1024;
const SCRATCH_AT = 0;
const LANDING_AT = AREA_BYTES;
const VIEW_AT = 2 * AREA_BYTES;
/** a source from elsewhere is copied into scratch and reduced in pieces of this many bytes, which stay in cache in between */
const PIECE_BYTES = 256 * 1024;
/** wasm32 memories stop at 4 GiB (65536 pages) */
const MAX_PAGES = 65536;

export class WasmArena {
  private readonly memory: WasmMemory & { grow(pages: number): number };
  private readonly kernels: (redop: number, dtype: number) => ReduceKernels;

  private constructor(kernels: (memory: WasmMemory) => ((redop: number, dtype: number) => ReduceKernels) | undefined) {
    // Shared, because the reduction module imports a shared memory (the shm world's staging memory
    // is one); an unshared memory here fails to link and would leave the ring on plain JS loops.
    // A shared memory also never moves when it grows, so a socket may hold a pointer into it.
    this.memory = new Wasm.Memory({ initial: VIEW_AT / PAGE, maximum: MAX_PAGES, shared: true }) as WasmArena["memory"];
    const k = kernels(this.memory);
    if (!k) throw new Error("WebAssembly SIMD is unavailable");
    this.kernels = k;
  }

  /** An arena, or undefined where WebAssembly SIMD is unavailable. */
  static create(): WasmArena | undefined {
    try {
      return new WasmArena(wasmKernels);
    } catch {
      return undefined;
    }
  }

  /** A view of `length` elements of `dtype` after the fixed areas; valid until the next call of view(). */
  view(dtype: number, length: number, width: number): CommArray {
    const need = VIEW_AT + length * width;
    const pages = Math.ceil(need / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    return viewOf(dtype, this.memory.buffer, VIEW_AT, length);
  }

  /**
   * Memory a socket may read up to `maxBytes` (at most 1 MiB) into, for
   * pieces that a reducer or combiner of this arena consumes before the
   * next read completes (so several sockets may share it).
   */
  landing(maxBytes: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, LANDING_AT, Math.min(maxBytes, AREA_BYTES));
  }

  /** dst (in this arena) = op(dst, src) where src may be anywhere: src is copied into scratch in pieces. */
  reducer(redop: number, dtype: number, width: number): Reducer {
    const k = this.kernels(redop, dtype);
    return (dst, src) => {
      if (src.buffer === this.memory.buffer) return k.reduce(dst, src);
      this.inPieces(src.length, width, (at, len) => k.reduce(dst.subarray(at, at + len), this.scratchCopy(dtype, src, at, len)));
    };
  }

  private inPieces(length: number, width: number, run: (at: number, len: number) => void): void {
    const perPiece = PIECE_BYTES / width;
    for (let at = 0; at < length; at += perPiece) run(at, Math.min(perPiece, length - at));
  }

  private scratchCopy(dtype: number, src: CommArray, at: number, len: number): CommArray {
    const scratch = viewOf(dtype, this.memory.buffer, SCRATCH_AT, len);
    scratch.set(src.subarray(at, at + len) as never);
    return scratch;
  }
}
