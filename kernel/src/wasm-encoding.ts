/**
 * The WebAssembly binary encoding that distlab's emitted modules share
 * (https://webassembly.github.io/spec/core/binary/): LEB128 integers, names,
 * vectors and sections. The modules themselves are emitted where they are
 * used: comm/reduce-wasm.ts and comm/wasm-copy.ts (collectives),
 * compute/wasm/simd-asm.ts (the CPU compute kernels' assembler).
 */

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

/** Signed LEB128 (i32.const immediates). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

/** A name: its length, then its bytes (ASCII here). */
export const str = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
/** A section: id, byte length, body. */
export const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
/** A vector: count, then the items. */
export const vector = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
/** The module header: magic and version 1. */
export const MODULE_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
