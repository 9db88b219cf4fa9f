// Bundles bench/gpu/webgpu-bench.ts with TF.js core and its webgpu backend
// into .gpu-run/webgpu-bench.cjs, and copies the parts of Dawn's `webgpu`
// package that a Linux x64 machine needs (its loader and dawn.node, 21 MiB),
// so the GPU machine needs no npm install. .gpu-run/ is git-ignored
// locally and carried to the device machine (see run.sh).
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const out = path.join(root, ".gpu-run");
rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, "node_modules/webgpu/dist/linux-x64"), { recursive: true });
await build({
  entryPoints: [path.join(root, "bench/gpu/webgpu-bench.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["webgpu"],
  outfile: path.join(out, "webgpu-bench.cjs"),
  logLevel: "warning",
});
const dawn = path.join(root, "node_modules/webgpu");
for (const file of ["package.json", "index.js", "dist/linux-x64/dawn.node"]) cpSync(path.join(dawn, file), path.join(out, "node_modules/webgpu", file));
// The subgroup-matrix and register-blocked matMul benches need nothing but Dawn (bundled with their shared harness and kernel source).
for (const bench of ["subgroup-matrix-bench.mjs", "sgemm-bench.mjs"]) {
  await build({
    entryPoints: [path.join(root, "bench/gpu", bench)],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["webgpu"],
    outfile: path.join(out, bench),
    logLevel: "warning",
  });
}
console.log(`built ${out}`);
// GPT-2 small on webgpu (gpt2-bench.ts): distlab/models imports the @tensorflow/tfjs umbrella, of which it uses only core ops, so tfjs-core stands in for it.
await build({
  entryPoints: [path.join(root, "bench/gpu/gpt2-bench.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["webgpu"],
  alias: { "@tensorflow/tfjs": "@tensorflow/tfjs-core" },
  outfile: path.join(out, "gpt2-bench.cjs"),
  logLevel: "warning",
});
console.log(`built ${out}/gpt2-bench.cjs`);
// The table of a gpt2.sh run (gpt2-summary.ts, with bench/stats.ts).
await build({ entryPoints: [path.join(root, "bench/gpu/gpt2-summary.ts")], bundle: true, platform: "node", format: "cjs", target: "node20", outfile: path.join(out, "gpt2-summary.cjs"), logLevel: "warning" });
