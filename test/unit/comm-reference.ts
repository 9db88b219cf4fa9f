// Plain, obviously-correct reference results for each collective, computed
// on the test's thread from every rank's input.
import type { CommArray } from "../../kernel/src/comm";

export const DTYPE_CTORS = [Float32Array, Float64Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array] as const;
export const REDUCE_OPS = ["sum", "mean", "max", "min", "product"] as const;

const blockStart = (i: number, n: number, size: number) => Math.floor((i * n) / size);
const like = <T extends CommArray>(x: T, n: number) => new (x.constructor as new (n: number) => T)(n);

function combine(op: string, a: number, b: number, isInt32: boolean): number {
  switch (op) {
    case "sum": case "mean": return a + b;
    case "max": return Math.max(a, b);
    case "min": return Math.min(a, b);
    case "product": return isInt32 ? Math.imul(a, b) : a * b;
    default: throw new Error(op);
  }
}

export function referenceReduce(xs: CommArray[], op: string): CommArray {
  const out = xs[0].slice();
  const int32 = out instanceof Int32Array || out instanceof Uint32Array;
  for (let r = 1; r < xs.length; r++) for (let i = 0; i < out.length; i++) out[i] = combine(op, out[i], xs[r][i], int32);
  if (op === "mean") {
    const float = out instanceof Float32Array || out instanceof Float64Array;
    for (let i = 0; i < out.length; i++) out[i] = float ? out[i] / xs.length : Math.trunc(out[i] / xs.length);
  }
  return out;
}

export function block<T extends CommArray>(x: T, i: number, size: number): T {
  return x.slice(blockStart(i, x.length, size), blockStart(i + 1, x.length, size)) as T;
}

export function concat<T extends CommArray>(parts: T[]): T {
  const out = like(parts[0], parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p as never, at); at += p.length; }
  return out;
}

/** What rank `rank` must get back from `op` given every rank's input. */
export function expected(op: string, xs: CommArray[], rank: number, root: number, redop: string): CommArray | null {
  const n = xs.length;
  switch (op) {
    case "allReduce": return referenceReduce(xs, redop);
    case "reduce": return rank === root ? referenceReduce(xs, redop) : like(xs[0], 0);
    case "reduceScatter": return block(referenceReduce(xs, redop), rank, n);
    case "allGather": return concat(xs);
    case "broadcast": return xs[root].slice();
    case "gather": return rank === root ? concat(xs) : like(xs[0], 0);
    case "scatter": return block(xs[root], rank, n);
    case "allToAll": return concat(xs.map((x) => block(x, rank, n)));
    case "barrier": return null;
    default: throw new Error(op);
  }
}

/** Deterministic fill: small integers so float sums and products are exact in any order. */
export function fill(ctor: (typeof DTYPE_CTORS)[number], length: number, seed: number, small: boolean): CommArray {
  const x = new ctor(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    x[i] = small ? (s % 7) - 3 : s;
  }
  return x;
}
