// The ring's receive-side reduction over a rank's own small WebAssembly
// memory: unshared and of fixed size (1.5 MiB), unlike the arena's.
//   [0, 1 MiB)          landing: where a socket reads incoming pieces
//   [1 MiB, +256 KiB)   stage: a piece of the rank's own data, reduced here and copied out
//   [+256 KiB, +512 KiB) scratch: a piece of incoming data that arrived elsewhere
// Why a memory of its own: V8 copies into and out of any SharedArrayBuffer
// (a shared WebAssembly memory included) with relaxed-atomic word copies
// (v8::internal::relaxed_memmove: 46% of a tcp rank's user time in a 64 MiB
// allReduce, measured with perf), about half the speed of the plain memmove
// used for unshared memory, and the ring copies every piece it reduces in
// and out. It never grows, so a socket may hold a pointer into it across
// reads. The SIMD module of reduce-wasm.ts imports a shared memory, so this
// file emits its own (the same loops, two-operand form, memory defined and
// exported instead of imported).
import { DTYPES, viewOf } from "./dtype";
import { jsReducer } from "./reduce-js";
import type { Combiner } from "./reduce-wasm";
import { Wasm, type WasmMemory } from "./wasm-api";

const PAGE = 64 * 1024;
const LANDING_BYTES = 1024 * 1024;
/** bytes copied and reduced at a time: the piece, its stage and the incoming bytes stay in the L2 cache */
const PIECE_BYTES = 256 * 1024;
const STAGE_AT = LANDING_BYTES;
const SCRATCH_AT = STAGE_AT + PIECE_BYTES;
const PAGES = (SCRATCH_AT + PIECE_BYTES) / PAGE;

/** SIMD opcodes (after the 0xfd prefix) by dtype name, per reduce op: [sum, max, min, product]; undefined = no SIMD form. */
const SIMD: Record<string, (number | undefined)[]> = {
  float32: [0xe4, 0xe9, 0xe8, 0xe6],
  float64: [0xf0, 0xf5, 0xf4, 0xf2],
  int32: [0xae, 0xb8, 0xb6, 0xb5],
  uint32: [0xae, 0xb9, 0xb7, 0xb5],
  int16: [0x8e, 0x98, 0x96, 0x95],
  uint16: [0x8e, 0x99, 0x97, 0x95],
  int8: [0x6e, 0x78, 0x76, undefined],
  uint8: [0x6e, 0x79, 0x77, undefined],
};
const OP_SLOT = [0, 0, 1, 2, 3]; // reduce-op codes sum, mean (summed), max, min, product -> SIMD column

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}
const str = (s: string) => [...uleb(s.length), ...Buffer.from(s)];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vector = (items: number[][]) => [...uleb(items.length), ...items.flat()];

/** (dst, src, bytes): dst = op(dst, src) over bytes (a multiple of 32), two 16-byte vectors per iteration. */
function loopBody(simdOp: number): number[] {
  const [dst, src, bytes, end] = [0, 1, 2, 3];
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const load = (ptr: number, offset: number) => [...get(ptr), 0xfd, 0x00, 0x04, ...uleb(offset)];
  const step = (offset: number) => [...get(dst), ...load(dst, offset), ...load(src, offset), 0xfd, ...uleb(simdOp), 0xfd, 0x0b, 0x04, ...uleb(offset)];
  const advance = (i: number) => [...get(i), 0x41, 0x20, 0x6a, ...set(i)];
  const code = [
    0x01, 0x01, 0x7f, // one extra local: i32 end
    ...get(dst), ...get(bytes), 0x6a, ...set(end),
    0x02, 0x40, 0x03, 0x40,
    ...get(dst), ...get(end), 0x4f, 0x0d, 0x01, // if dst >= end: break
    ...step(0), ...step(16), ...advance(dst), ...advance(src),
    0x0c, 0x00, 0x0b, 0x0b, 0x0b,
  ];
  return [...uleb(code.length), ...code];
}

function moduleBytes(names: string[], opcodes: number[]): Uint8Array {
  const type = [0x60, 3, 0x7f, 0x7f, 0x7f, 0];
  const exports = [...names.map((name, i) => [...str(name), 0x00, ...uleb(i)]), [...str("memory"), 0x02, 0]];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([type])),
    ...section(3, vector(names.map(() => [0]))),
    ...section(5, vector([[0x01, ...uleb(PAGES), ...uleb(PAGES)]])), // unshared, fixed size
    ...section(7, vector(exports)),
    ...section(10, vector(opcodes.map(loopBody))),
  ]);
}

type Kernel = (dst: number, src: number, bytes: number) => void;

export class CombineArena {
  private readonly buffer: ArrayBuffer;
  private readonly kernels: Record<string, Kernel>;

  private constructor() {
    const names: string[] = [];
    const opcodes: number[] = [];
    for (const d of DTYPES) {
      SIMD[d.name].forEach((opcode, slot) => {
        if (opcode === undefined) return;
        names.push(`${d.name}_${slot}`);
        opcodes.push(opcode);
      });
    }
    const bytes = moduleBytes(names, opcodes);
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
