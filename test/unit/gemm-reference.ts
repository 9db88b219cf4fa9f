// Shared by the matrix-product tests (compute-gemm: the WebAssembly kernel;
// compute-cpu-blas: the machine's BLAS): a float64 reference product,
// deterministic operands, the tolerance, and the random product cases.
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ProductShape } from "../../kernel/src/compute/wasm/gemm";

/** out[m, n] = op(a) op(b) (+ bias) in float64, operands from offsets aAt and bAt. */
export function reference(a: Float32Array, aAt: number, b: Float32Array, bAt: number, { m, k, n, transposeA, transposeB }: ProductShape, bias?: Float32Array): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = bias ? bias[j]! : 0;
      for (let kk = 0; kk < k; kk++) {
        sum += a[aAt + (transposeA ? kk * m + i : i * k + kk)]! * b[bAt + (transposeB ? j * k + kk : kk * n + j)]!;
      }
      out[i * n + j] = sum;
    }
  }
  return out;
}

/** `length` values in [-1, 1) from a xorshift sequence seeded with `seed`. */
export function random(length: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  return Float32Array.from({ length }, () => {
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
    return ((state >>> 0) / 2 ** 32) * 2 - 1;
  });
}

/** Largest |got - want| relative to sqrt(k) (a sum of k products of values in [-1, 1]). */
export function assertClose(got: Float32Array, at: number, want: Float64Array, k: number, what: string): void {
  const tolerance = 4e-6 * Math.max(1, Math.sqrt(k));
  for (let i = 0; i < want.length; i++) {
    const error = Math.abs(got[at + i]! - want[i]!);
    assert.ok(error <= tolerance, `${what}: element ${i} is ${got[at + i]}, expected ${want[i]} (error ${error})`);
  }
}

/** Random products: shapes that are not multiples of a register tile (and empty ones), transposes, a bias, offsets. */
export const productCases = fc.record({
  m: fc.integer({ min: 0, max: 19 }), k: fc.integer({ min: 0, max: 37 }), n: fc.integer({ min: 0, max: 27 }),
  transposeA: fc.boolean(), transposeB: fc.boolean(), withBias: fc.boolean(),
  aAt: fc.integer({ min: 0, max: 5 }), bAt: fc.integer({ min: 0, max: 5 }), outAt: fc.integer({ min: 0, max: 5 }), seed: fc.integer(),
});
