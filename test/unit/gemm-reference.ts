// Shared by the matrix-product tests (compute-gemm: the WebAssembly kernel;
// compute-cpu-blas: the machine's BLAS): a float64 reference product,
// deterministic operands, the tolerance, and the random product cases.
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Operand, ProductShape } from "../../kernel/src/compute/wasm/gemm";

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

/** A product as WasmGemm and CpuBlas take it: out[out.offset ..][m, n] = op(a) op(b) (+ bias). */
export type Multiply = (a: Operand, b: Operand, out: Operand, shape: ProductShape, bias?: Operand) => void;

/**
 * `numRuns` of productCases through `multiply`, each against the float64 reference and, where given,
 * against `alongside` (another kernel) on the same operands; nothing may be written outside the
 * result. `label` starts every failure message.
 */
export function checkRandomProducts(multiply: Multiply, numRuns: number, label: string, alongside?: Multiply): void {
  fc.assert(fc.property(
    productCases,
    ({ withBias, aAt, bAt, outAt, seed, ...shape }) => {
      const { m, k, n } = shape;
      const a = random(aAt + m * k, seed), b = random(bAt + k * n, seed + 1);
      const bias = withBias ? random(n, seed + 2) : undefined;
      const out = new Float32Array(outAt + m * n + 3).fill(7);
      const other = out.slice();
      const operands = [{ data: a, offset: aAt }, { data: b, offset: bAt }] as const;
      multiply(...operands, { data: out, offset: outAt }, shape, bias && { data: bias, offset: 0 });
      const what = `${label}: ${JSON.stringify({ ...shape, withBias, aAt, bAt, outAt })}`;
      assertClose(out, outAt, reference(a, aAt, b, bAt, shape, bias), k, what);
      if (alongside) {
        alongside(...operands, { data: other, offset: outAt }, shape, bias && { data: bias, offset: 0 });
        assertClose(out, outAt, Float64Array.from(other.subarray(outAt, outAt + m * n)), k, `${what}, against the other kernel`);
      }
      for (let i = 0; i < outAt; i++) assert.equal(out[i], 7, `${what}: element ${i} before the result was written`);
      for (let i = outAt + m * n; i < out.length; i++) assert.equal(out[i], 7, `${what}: element ${i} after the result was written`);
    },
  ), { numRuns });
}
