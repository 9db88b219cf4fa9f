// The ring's receive-side reduction over a rank's own small WebAssembly
// memory: unshared and of fixed size (1.5 MiB), unlike the arena's.
//   [0, 1 MiB)          landing: where a socket reads incoming pieces
//   [1 MiB, +256 KiB)   stage: a piece of the rank's own data, reduced here and copied out
//   [+256 KiB, +512 KiB) scratch: a piece of incoming data that arrived elsewhere
// Why a memory of its own: V8 copies into and out of any SharedArrayBuffer
// (a shared WebAssembly memory included) with relaxed-atomic word copies
// (v8::internal::relaxed_memmove, the largest part of a tcp rank's user time
// in a 64 MiB allReduce under perf), about half the speed of the plain memmove
// used for unshared memory, and the ring copies every piece it reduces in
// and out. It never grows, so a socket may hold a pointer into it across
// reads. The loops are reduce-wasm.ts's, in a module that defines and
// exports this memory instead of importing a shared one.
import { DTYPES, viewOf } from "./dtype";
import { jsReducer } from "./reduce-js";
import { OP_SLOT, reductionKernels, reductionModule, type Combiner } from "./reduce-wasm";
import { Wasm, type WasmMemory } from "./wasm-api";

const PAGE = 64 * 1024;
const LANDING_BYTES = 1024 * 1024;
/** bytes copied and reduced at a time: the piece, its stage and the incoming bytes stay in the L2 cache */
const PIECE_BYTES = 256 * 1024;
const STAGE_AT = LANDING_BYTES;
const SCRATCH_AT = STAGE_AT + PIECE_BYTES;
const PAGES = (SCRATCH_AT + PIECE_BYTES) / PAGE;

type Kernel = (dst: number, src: number, bytes: number) => void;

export class CombineArena {
  private readonly buffer: ArrayBuffer;
  private readonly kernels: Record<string, Kernel>;

  private constructor() {
    const list = reductionKernels().filter((k) => !k.three);
    const bytes = reductionModule(list, { ownPages: PAGES });
    if (!Wasm.validate(bytes)) throw new Error("WebAssembly SIMD is unavailable");
    const exports = new Wasm.Instance(new Wasm.Module(bytes), {}).exports;
    this.buffer = (exports.memory as WasmMemory).buffer as ArrayBuffer;
    this.kernels = exports as Record<string, Kernel>;
  }

  /** An arena, or undefined where WebAssembly SIMD is unavailable. */
  static create(): CombineArena | undefined {
    try {
      return new CombineArena();
    } catch {
      return undefined;
    }
  }

  /**
   * Memory a socket may read up to `maxBytes` (at most 1 MiB) into, for
   * pieces the combiner consumes before the next read completes (so several
   * sockets may share it).
   */
  landing(maxBytes: number): Uint8Array {
    return new Uint8Array(this.buffer, 0, Math.min(maxBytes, LANDING_BYTES));
  }

  /**
   * dst = op(a, src) element-wise for arrays anywhere (dst may be a): in
   * pieces, a is copied into the stage, src is used where it landed (or
   * copied into scratch), the SIMD loop reduces, the stage is copied to dst.
   */
  combiner(redop: number, dtype: number, width: number): Combiner {
    const plain = jsReducer(redop, dtype);
    const kernel = this.kernels[`${DTYPES[dtype].name}_${OP_SLOT[redop]}`];
    if (!kernel) {
      return (dst, a, src) => {
        if (dst.buffer !== a.buffer || dst.byteOffset !== a.byteOffset) dst.set(a as never);
        plain(dst, src);
      };
    }
    const perPiece = PIECE_BYTES / width;
    return (dst, a, src) => {
      for (let at = 0; at < src.length; at += perPiece) {
        const len = Math.min(perPiece, src.length - at);
        let s = src.subarray(at, at + len);
        if (s.buffer !== this.buffer) {
          const scratch = viewOf(dtype, this.buffer, SCRATCH_AT, len);
          scratch.set(s as never);
          s = scratch;
        }
        const stage = viewOf(dtype, this.buffer, STAGE_AT, len);
        stage.set(a.subarray(at, at + len) as never);
        const vectorBytes = (len * width) & ~31;
        if (vectorBytes) kernel(STAGE_AT, s.byteOffset, vectorBytes);
        const done = vectorBytes / width;
        if (done < len) plain(stage.subarray(done), s.subarray(done));
        dst.subarray(at, at + len).set(stage as never);
      }
    };
  }
}
