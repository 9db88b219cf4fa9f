// WebAssembly SIMD reduction kernels, dst[i] = op(dst[i], src[i]) over 16
// bytes at a time, working in place on the shared memory of a shm world
// (the direct path's staging and result slots live there).
//
// The module is emitted here as bytes (about 600 bytes) rather than
// compiled from text at build time: it is one loop repeated per
// instruction, and emitting it needs no text-to-wasm toolchain in the build.
// Its speed against the JavaScript loops (float32 sum over 256 KiB slots):
// docs/collectives.md.
import { DTYPES } from "./dtype";
import { jsReducer, type Reducer } from "./reduce-js";
import type { CommArray } from "./types";
import { MODULE_HEADER, section, str, uleb, vector } from "../wasm-encoding";
import { Wasm, type WasmMemory } from "./wasm-api";

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
/** reduce-op code (sum, mean (summed), max, min, product) -> column of SIMD */
export const OP_SLOT = [0, 0, 1, 2, 3];

/**
 * One loop function. Two-operand form (dst, src, bytes): dst = op(dst, src).
 * Three-operand form (dst, a, b, bytes): dst = op(a, b), which saves the
 * copy of a into dst. Two vectors (32 bytes) per iteration; bytes is a
 * multiple of 32.
 */
function loopBody(simdOp: number, three: boolean): number[] {
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const [dst, a, b] = three ? [0, 1, 2] : [0, 0, 1];
  const bytes = three ? 3 : 2;
  const end = bytes + 1;
  const load = (ptr: number, offset: number) => [...get(ptr), 0xfd, 0x00, 0x04, ...uleb(offset)];
  const step = (offset: number) => [
    ...get(dst), ...load(a, offset), ...load(b, offset), 0xfd, ...uleb(simdOp), 0xfd, 0x0b, 0x04, ...uleb(offset),
  ];
  const advance = (i: number) => [...get(i), 0x41, 0x20, 0x6a, ...set(i)];
  const code = [
    0x01, 0x01, 0x7f, // one extra local: i32 end
    ...get(dst), ...get(bytes), 0x6a, ...set(end),
    0x02, 0x40, 0x03, 0x40,
    ...get(dst), ...get(end), 0x4f, 0x0d, 0x01, // if dst >= end: break
    ...step(0), ...step(16),
    ...(three ? [...advance(0), ...advance(1), ...advance(2)] : [...advance(0), ...advance(1)]),
    0x0c, 0x00, 0x0b, 0x0b, 0x0b,
  ];
  return [...uleb(code.length), ...code];
}

/** One exported loop: `${dtype}_${slot}` (two-operand) or `${dtype}_${slot}_3` (three-operand). */
export interface ReductionKernel { name: string; dtype: number; slot: number; opcode: number; three: boolean }

/** Every (dtype, op) pair with a SIMD instruction, in both forms. */
export function reductionKernels(): ReductionKernel[] {
  const out: ReductionKernel[] = [];
  DTYPES.forEach((d, dtype) => SIMD[d.name].forEach((opcode, slot) => {
    if (opcode === undefined) return;
    out.push({ name: `${d.name}_${slot}`, dtype, slot, opcode, three: false });
    out.push({ name: `${d.name}_${slot}_3`, dtype, slot, opcode, three: true });
  }));
  return out;
}

/**
 * Where the module's memory comes from: imported as env.memory (shared, up to 4 GiB: a shm
 * world's memory or a rank's arena), or its own unshared memory of a fixed number of pages,
 * exported as "memory".
 */
export type ReductionMemory = { imported: "shared" } | { ownPages: number };

/** The module of `list`'s loops over the given memory. */
export function reductionModule(list: ReductionKernel[], memory: ReductionMemory = { imported: "shared" }): Uint8Array {
  const type2 = [0x60, 3, 0x7f, 0x7f, 0x7f, 0];
  const type3 = [0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 0];
  const functionExports = list.map((k, i) => [...str(k.name), 0x00, ...uleb(i)]);
  const memorySections = "ownPages" in memory
    ? [
        ...section(3, vector(list.map((k) => [k.three ? 1 : 0]))),
        ...section(5, vector([[0x01, ...uleb(memory.ownPages), ...uleb(memory.ownPages)]])), // unshared, fixed size
        ...section(7, vector([...functionExports, [...str("memory"), 0x02, 0]])),
      ]
    : [
        ...section(3, vector(list.map((k) => [k.three ? 1 : 0]))),
        ...section(7, vector(functionExports)),
      ];
  const importSection = "ownPages" in memory ? [] : section(2, vector([[...str("env"), ...str("memory"), 0x02, 0x03, ...uleb(1), ...uleb(65536)]]));
  return new Uint8Array([
    ...MODULE_HEADER,
    ...section(1, vector([type2, type3])),
    ...importSection,
    ...memorySections,
    ...section(10, vector(list.map((k) => loopBody(k.opcode, k.three)))),
  ]);
}

type Kernel3 = (dst: number, src: number, bytes: number) => void;
type Kernel4 = (dst: number, a: number, b: number, bytes: number) => void;

/** dst = op(a, b) element-wise; all three of one length. */
export type Combiner = (dst: CommArray, a: CommArray, b: CommArray) => void;

/** The two forms of one (op, dtype) pair. */
export interface ReduceKernels {
  reduce: Reducer;
  combine: Combiner;
}

/** Plain-loop kernels: combine copies a into dst, then reduces b into it. */
export function jsKernels(redop: number, dtype: number): ReduceKernels {
  const reduce = jsReducer(redop, dtype);
  return {
    reduce,
    combine(dst, a, b) {
      dst.set(a as never);
      reduce(dst, b);
    },
  };
}

/**
 * Kernels that run in WebAssembly SIMD when all arrays view `memory`, and
 * fall back to the plain loops otherwise (and for the last < 32 bytes).
 * Returns undefined where WebAssembly SIMD is unavailable.
 */
export function wasmKernels(memory: WasmMemory): ((redop: number, dtype: number) => ReduceKernels) | undefined {
  const list = reductionKernels();
  const bytes = reductionModule(list);
  if (!Wasm.validate(bytes)) return undefined;
  const instance = new Wasm.Instance(new Wasm.Module(bytes), { env: { memory } });
  // read memory.buffer on every call: a growable (non-shared) memory replaces its buffer when it grows
  const cache = new Map<number, ReduceKernels>();
  const build = (redop: number, dtype: number): ReduceKernels => {
    const fallback = jsKernels(redop, dtype);
    const name = `${DTYPES[dtype].name}_${OP_SLOT[redop]}`;
    const two = instance.exports[name] as Kernel3 | undefined;
    const three = instance.exports[`${name}_3`] as Kernel4 | undefined;
    if (!two || !three) return fallback;
    return {
      reduce(dst, src) {
        const buffer = memory.buffer;
        if (dst.buffer !== buffer || src.buffer !== buffer) return fallback.reduce(dst, src);
        const vectorBytes = dst.byteLength & ~31;
        if (vectorBytes) two(dst.byteOffset, src.byteOffset, vectorBytes);
        const done = vectorBytes / dst.BYTES_PER_ELEMENT;
        if (done < dst.length) fallback.reduce(dst.subarray(done), src.subarray(done));
      },
      combine(dst, a, b) {
        const buffer = memory.buffer;
        if (dst.buffer !== buffer || a.buffer !== buffer || b.buffer !== buffer) return fallback.combine(dst, a, b);
        const vectorBytes = dst.byteLength & ~31;
        if (vectorBytes) three(dst.byteOffset, a.byteOffset, b.byteOffset, vectorBytes);
        const done = vectorBytes / dst.BYTES_PER_ELEMENT;
        if (done < dst.length) fallback.combine(dst.subarray(done), a.subarray(done), b.subarray(done));
      },
    };
  };
  return (redop, dtype) => {
    const key = redop * 16 + dtype;
    let k = cache.get(key);
    if (!k) cache.set(key, (k = build(redop, dtype)));
    return k;
  };
}
