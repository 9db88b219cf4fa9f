// Element-wise reduction kernels in plain JavaScript: dst[i] = op(dst[i], src[i]).
// Each (dtype, op) pair gets its own compiled function so V8 sees a single
// typed-array type per loop and keeps it monomorphic (one shared generic
// loop measured several times slower once it had seen several dtypes).
import { DTYPES } from "./dtype";
import type { CommArray } from "./types";

export type Reducer = (dst: CommArray, src: CommArray) => void;

/** Reduce-op codes as in descriptor.ts REDUCE_OPS: sum, mean (summed, then divided), max, min, product. */
function expression(redop: number, dtype: string): string {
  switch (redop) {
    case 0:
    case 1:
      return "d[i] + s[i]";
    case 2:
      return dtype.startsWith("float") ? "(d[i] >= s[i] || d[i] !== d[i] ? d[i] : s[i])" : "(d[i] >= s[i] ? d[i] : s[i])";
    case 3:
      return dtype.startsWith("float") ? "(d[i] <= s[i] || d[i] !== d[i] ? d[i] : s[i])" : "(d[i] <= s[i] ? d[i] : s[i])";
    case 4:
      // int32 products must wrap like C; a double product would round first.
      return dtype === "int32" || dtype === "uint32" ? "Math.imul(d[i], s[i])" : "d[i] * s[i]";
    default:
      throw new RangeError(`unknown reduce op code ${redop}`);
  }
}

const cache = new Map<number, Reducer>();

export function jsReducer(redop: number, dtype: number): Reducer {
  const key = redop * 16 + dtype;
  let f = cache.get(key);
  if (!f) {
    const body = `for (let i = 0, n = d.length; i < n; i++) d[i] = ${expression(redop, DTYPES[dtype].name)};`;
    f = new Function("d", "s", body) as Reducer;
    cache.set(key, f);
  }
  return f;
}

/** Finishes a mean: divides by the rank count (integer dtypes truncate toward zero). */
export function divideInPlace(x: CommArray, n: number): void {
  if (n === 1) return;
  if (x instanceof Float32Array || x instanceof Float64Array) {
    for (let i = 0; i < x.length; i++) x[i] = x[i] / n;
  } else {
    for (let i = 0; i < x.length; i++) x[i] = Math.trunc(x[i] / n);
  }
}
