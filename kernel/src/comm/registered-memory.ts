// What `comm.alloc` hands out: memory the transport's collectives can use in
// place. A shm world's is its registered memory (shm-heap.ts); a transport
// without one (tcp) hands out plain arrays.
import { DTYPES } from "./dtype";
import type { CommArray } from "./types";

export type TypedArrayConstructor<T extends CommArray> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
};

/** Memory that a communicator's collectives can use in place. */
export interface RegisteredMemory {
  alloc<T extends CommArray>(ctor: TypedArrayConstructor<T>, length: number): T;
  free(array: CommArray): void;
  /** Whether `array` is a view of registered memory (then byteOffset is its address in the world's memory). */
  holds(array: CommArray): boolean;
}

/** Throws naming the argument when alloc(ctor, length) cannot be served. */
export function checkAllocArguments(ctor: unknown, length: number): void {
  if (!DTYPES.some((d) => d.ctor === ctor)) {
    const got = (ctor as { name?: string } | null)?.name ?? String(ctor);
    throw new TypeError(`alloc: dtype must be one of ${DTYPES.map((d) => d.ctor.name).join(", ")}, got ${got}`);
  }
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`alloc: length must be an integer >= 0, got ${length}`);
}

/** For transports without registered memory: plain zeroed arrays; free does nothing. */
export const PLAIN_MEMORY: RegisteredMemory = {
  alloc(ctor, length) {
    checkAllocArguments(ctor, length);
    return new ctor(new ArrayBuffer(length * ctor.BYTES_PER_ELEMENT), 0, length);
  },
  free() {},
  holds: () => false,
};
