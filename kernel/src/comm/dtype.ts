// Typed-array dtypes as small integer codes, so a collective's descriptor
// fits in a few Int32 words of shared memory or a frame header.
import type { CommArray } from "./types";

type CommArrayConstructor = {
  new (length: number): CommArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): CommArray;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
};

export const DTYPES: readonly { name: string; ctor: CommArrayConstructor }[] = [
  { name: "float32", ctor: Float32Array },
  { name: "float64", ctor: Float64Array },
  { name: "int32", ctor: Int32Array },
  { name: "uint32", ctor: Uint32Array },
  { name: "int16", ctor: Int16Array },
  { name: "uint16", ctor: Uint16Array },
  { name: "int8", ctor: Int8Array },
  { name: "uint8", ctor: Uint8Array },
];

export function dtypeCode(x: unknown, where: string): number {
  for (let code = 0; code < DTYPES.length; code++) {
    if (x instanceof DTYPES[code].ctor) return code;
  }
  const got =
    x === null ? "null" : typeof x === "object" ? (x as object).constructor?.name ?? "object" : typeof x;
  throw new TypeError(
    `${where}: expected a typed array (${DTYPES.map((d) => d.ctor.name).join(", ")}), got ${got}`,
  );
}

export function dtypeName(code: number): string {
  return DTYPES[code]?.name ?? `dtype#${code}`;
}

export function elementBytes(code: number): number {
  return DTYPES[code].ctor.BYTES_PER_ELEMENT;
}

/** A new zeroed array of the dtype. */
export function allocate<T extends CommArray>(like: T, length: number): T {
  return new (like.constructor as new (n: number) => T)(length);
}

/** A typed view of the dtype over raw bytes (byteOffset must be element-aligned). */
export function viewOf(code: number, buffer: ArrayBufferLike, byteOffset: number, length: number): CommArray {
  return new DTYPES[code].ctor(buffer, byteOffset, length);
}

export function bytesOf(x: CommArray): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

/** Block i of `size` blocks of a length-n array: [floor(i*n/size), floor((i+1)*n/size)). */
export function blockStart(i: number, n: number, size: number): number {
  return Math.floor((i * n) / size);
}
