// WebAssembly SIMD reduction kernels, dst[i] = op(dst[i], src[i]) over 16
// bytes at a time, working in place on the shared memory of a shm world
// (the direct path's staging and result slots live there).
//
// The module is emitted here as bytes (about 600 bytes) rather than
// compiled from text at build time: it is one loop repeated per
// instruction, and emitting it needs no text-to-wasm toolchain in the build.
// Measured on this machine (bench/collectives-reduce.mjs), float32 sum over
// 256 KiB slots: see docs/collectives.md.
import { DTYPES } from "./dtype";
import { jsReducer, type Reducer } from "./reduce-js";
import type { CommArray } from "./types";
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
const OP_SLOT = [0, 0, 1, 2, 3]; // sum, mean (summed), max, min, product

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

/** (dst, src, bytes): two vectors per iteration; bytes is a multiple of 32. */
function loopBody(simdOp: number): number[] {
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const load = (ptr: number, offset: number) => [...get(ptr), 0xfd, 0x00, 0x04, ...uleb(offset)];
  const step = (offset: number) => [
    ...get(0), ...load(0, offset), ...load(1, offset), 0xfd, ...uleb(simdOp), 0xfd, 0x0b, 0x04, ...uleb(offset),
  ];
  const code = [
    0x01, 0x01, 0x7f, // one extra local: i32 end
    ...get(0), ...get(2), 0x6a, ...set(3),
    0x02, 0x40, 0x03, 0x40,
    ...get(0), ...get(3), 0x4f, 0x0d, 0x01, // if dst >= end: break
    ...step(0), ...step(16),
    ...get(0), 0x41, 0x20, 0x6a, ...set(0),
    ...get(1), 0x41, 0x20, 0x6a, ...set(1),
    0x0c, 0x00, 0x0b, 0x0b, 0x0b,
  ];
  return [...uleb(code.length), ...code];
}

interface Kernel { name: string; dtype: number; slot: number; opcode: number }

function kernels(): Kernel[] {
  const out: Kernel[] = [];
  DTYPES.forEach((d, dtype) => SIMD[d.name].forEach((opcode, slot) => {
    if (opcode !== undefined) out.push({ name: `${d.name}_${slot}`, dtype, slot, opcode });
  }));
  return out;
}

function moduleBytes(list: Kernel[]): Uint8Array {
  const type = [0x60, 3, 0x7f, 0x7f, 0x7f, 0];
  const memoryImport = [...str("env"), ...str("memory"), 0x02, 0x03, ...uleb(1), ...uleb(65536)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([type])),
    ...section(2, vector([memoryImport])),
    ...section(3, vector(list.map(() => [0]))),
    ...section(7, vector(list.map((k, i) => [...str(k.name), 0x00, ...uleb(i)]))),
    ...section(10, vector(list.map((k) => loopBody(k.opcode)))),
  ]);
}

type Kernel3 = (dst: number, src: number, bytes: number) => void;

/**
 * Reducers that run in WebAssembly SIMD when both arrays view `memory`, and
 * fall back to the plain loops otherwise (and for the last < 32 bytes).
 * Returns undefined where WebAssembly SIMD is unavailable.
 */
export function wasmReducers(memory: WasmMemory): ((redop: number, dtype: number) => Reducer) | undefined {
  const list = kernels();
  const bytes = moduleBytes(list);
  if (!Wasm.validate(bytes)) return undefined;
  const instance = new Wasm.Instance(new Wasm.Module(bytes), { env: { memory } });
  const table = new Map<string, Kernel3>();
  for (const k of list) table.set(`${k.dtype}:${k.slot}`, instance.exports[k.name] as Kernel3);
  const buffer = memory.buffer;
  return (redop, dtype) => {
    const fallback = jsReducer(redop, dtype);
    const kernel = table.get(`${dtype}:${OP_SLOT[redop]}`);
    if (!kernel) return fallback;
    return (dst: CommArray, src: CommArray) => {
      if (dst.buffer !== buffer || src.buffer !== buffer) return fallback(dst, src);
      const vectorBytes = dst.byteLength & ~31;
      if (vectorBytes) kernel(dst.byteOffset, src.byteOffset, vectorBytes);
      const done = vectorBytes / dst.BYTES_PER_ELEMENT;
      if (done < dst.length) fallback(dst.subarray(done), src.subarray(done));
    };
  };
}
