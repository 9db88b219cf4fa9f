// A rank's private WebAssembly memory for the channel algorithms (ring,
// recursive doubling, rhd over tcp or shm channels): the accumulator of an
// allReduce or reduceScatter lives here, so arriving pieces are reduced by
// the SIMD kernels (about 15x the plain loop) after one copy into a scratch
// area, instead of by a JavaScript loop straight from the socket buffer.
import { viewOf } from "./dtype";
import type { Reducer } from "./reduce-js";
import { wasmKernels, type ReduceKernels } from "./reduce-wasm";
import type { CommArray } from "./types";
import { Wasm, type WasmMemory } from "./wasm-api";

const PAGE = 64 * 1024;
/** bytes of the scratch area at the start of the memory, where incoming pieces are copied before reducing */
const SCRATCH_BYTES = 1024 * 1024;
/** wasm32 memories stop at 4 GiB (65536 pages) */
const MAX_PAGES = 65536;

export class WasmArena {
  private readonly memory: WasmMemory & { grow(pages: number): number };
  private readonly kernels: (redop: number, dtype: number) => ReduceKernels;

  private constructor(kernels: (memory: WasmMemory) => ((redop: number, dtype: number) => ReduceKernels) | undefined) {
    // Shared, because the reduction module imports a shared memory (the shm world's staging memory
    // is one); an unshared memory here fails to link and would leave the ring on plain JS loops.
    this.memory = new Wasm.Memory({ initial: SCRATCH_BYTES / PAGE, maximum: MAX_PAGES, shared: true }) as WasmArena["memory"];
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

  /** A view of `length` elements of `dtype` after the scratch area; valid until the next call of view(). */
  view(dtype: number, length: number, width: number): CommArray {
    const need = SCRATCH_BYTES + length * width;
    const pages = Math.ceil(need / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    return viewOf(dtype, this.memory.buffer, SCRATCH_BYTES, length);
  }

  /** dst (in this arena) = op(dst, src) where src may be anywhere: src is copied into scratch in pieces. */
  reducer(redop: number, dtype: number, width: number): Reducer {
    const k = this.kernels(redop, dtype);
    const perPiece = SCRATCH_BYTES / width;
    return (dst, src) => {
      if (src.buffer === this.memory.buffer) return k.reduce(dst, src);
      for (let at = 0; at < src.length; at += perPiece) {
        const len = Math.min(perPiece, src.length - at);
        const scratch = viewOf(dtype, this.memory.buffer, 0, len);
        scratch.set(src.subarray(at, at + len) as never);
        k.reduce(dst.subarray(at, at + len), scratch);
      }
    };
  }
}
