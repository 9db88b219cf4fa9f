// The random-product check of compute-cpu-blas.test.ts, as a module: the test runs it in its own
// process on the default library, and in a child process per library (a process opens one).
import type { CpuBlas } from "../../kernel/src/compute/cpu-blas";
import { WasmGemm } from "../../kernel/src/compute/wasm/gemm";
import { checkRandomProducts } from "./gemm-reference";

/** `numRuns` random products through `blas`, each against a float64 reference and the WebAssembly kernel. */
export function checkBlasProducts(blas: CpuBlas, numRuns: number): void {
  const wasm = new WasmGemm();
  checkRandomProducts((a, b, out, shape, bias) => blas.multiply(a, b, out, shape, bias), numRuns, blas.library, (a, b, out, shape, bias) => wasm.multiply(a, b, out, shape, bias));
}
