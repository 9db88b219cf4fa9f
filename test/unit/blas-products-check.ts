// The random-product check of compute-cpu-blas.test.ts, as a module: the test runs it in its own
// process on the default library, and in a child process per library (a process opens one).
import assert from "node:assert/strict";
import fc from "fast-check";
import type { CpuBlas } from "../../kernel/src/compute/cpu-blas";
import { WasmGemm } from "../../kernel/src/compute/wasm/gemm";
import { assertClose, productCases, random, reference } from "./gemm-reference";

/**
 * `numRuns` random products (shapes off the register tiles, empty ones, transposes, a bias, offsets)
 * through `blas`, each against a float64 reference and the WebAssembly kernel, and nothing written
 * outside the result. Throws at the first that is off.
 */
export function checkBlasProducts(blas: CpuBlas, numRuns: number): void {
  const wasm = new WasmGemm();
  fc.assert(fc.property(
    productCases,
    ({ withBias, aAt, bAt, outAt, seed, ...shape }) => {
      const { m, k, n } = shape;
      const a = random(aAt + m * k, seed), b = random(bAt + k * n, seed + 1);
      const bias = withBias ? random(n, seed + 2) : undefined;
      const out = new Float32Array(outAt + m * n + 3).fill(7);
      const viaWasm = out.slice();
      blas.multiply({ data: a, offset: aAt }, { data: b, offset: bAt }, { data: out, offset: outAt }, shape, bias && { data: bias, offset: 0 });
      wasm.multiply({ data: a, offset: aAt }, { data: b, offset: bAt }, { data: viaWasm, offset: outAt }, shape, bias && { data: bias, offset: 0 });
      const what = `${blas.library}: ${JSON.stringify({ ...shape, withBias, aAt, bAt, outAt })}`;
      assertClose(out, outAt, reference(a, aAt, b, bAt, shape, bias), k, what);
      assertClose(out, outAt, Float64Array.from(viaWasm.subarray(outAt, outAt + m * n)), k, `${what} against the wasm kernel`);
      for (const i of [...Array(outAt).keys(), outAt + m * n, outAt + m * n + 1, outAt + m * n + 2]) assert.equal(out[i], 7, `${what}: element ${i} outside the result changed`);
    },
  ), { numRuns });
}
