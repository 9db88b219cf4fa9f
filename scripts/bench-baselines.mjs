#!/usr/bin/env node
// Set-up the side-by-side benchmarks need beyond `npm run setup`: PyTorch from
// Debian (the gloo and CPU baselines run under /usr/bin/python3) with an
// optimised BLAS. Without libopenblas, Debian's PyTorch falls back to the
// reference BLAS (about 2 GFLOP/s here), which would make every compute ratio
// look better than it is. oneDNN (libdnnl2) is what distlab's own CPU products
// run on by default, and bench:blas-products sets it against OpenBLAS.
import { ensureDebianPackages } from "./setup/debian.mjs";
import { SetupError } from "./setup/process.mjs";

const BASELINE_DEBIAN_PACKAGES = ["python3-torch", "libopenblas0-pthread", "libdnnl2"];

try {
  console.log(`bench baselines: ${await ensureDebianPackages(BASELINE_DEBIAN_PACKAGES)}`);
} catch (error) {
  if (!(error instanceof SetupError)) throw error;
  console.error(`bench baselines FAILED: ${error.message}`);
  if (error.hint) console.error(`what to do: ${error.hint}`);
  process.exit(1);
}
