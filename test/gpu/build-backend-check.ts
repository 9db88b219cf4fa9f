/**
 * Builds build/gpu-check/: backend-check.js (the driver), isolation-check.js
 * (isolation-check.sh's check) and rank-process.js
 * (the rank entry it starts, see rank-process-entry.ts), bundled with TensorFlow.js so the GPU machine
 * needs no npm install (Dawn's `webgpu` package comes from .gpu-run/, see
 * bench/gpu/build.mjs), and cells.json: the check's cells compiled here by
 * the kernel's own compiler against the ranks' declarations.
 *
 *   node --import tsx test/gpu/build-backend-check.ts
 */
import { build } from "esbuild";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";

const FLAGS = "--backend gpus";
const CELLS = [
  "const mine = tf.tensor([dist.rank + 1, 10]);\nconst total = await dist.allReduce(mine);\n" +
    "({ device: dist.device, backend: tf.getBackend(), total: Array.from(total.dataSync()) })",
  "// state kept from the cell before; a 2048^2 matMul on this rank's GPU\nconst a = tf.randomNormal([2048, 2048]);\n" +
    "await tf.matMul(a, a).data();\nconst started = performance.now();\nconst c = tf.matMul(a, a);\nawait c.data();\n" +
    "({ kept: Array.from(mine.dataSync()), matMulMs: Math.round(performance.now() - started) })",
];

async function main(): Promise<void> {
  const root = resolve(__dirname, "../..");
  const out = join(root, "build", "gpu-check");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const compiler = new CellCompiler();
  const chain = DeclarationChain.ranks();
  const cells = CELLS.map((source) => {
    const compiled = compiler.compile(source, chain);
    chain.advance(compiled);
    return { flags: FLAGS, source, compiled: { ...compiled, declarations: "" } };
  });
  compiler.close();
  writeFileSync(join(out, "cells.json"), JSON.stringify(cells));
  await build({
    entryPoints: { "backend-check": join(root, "test/gpu/backend-check.ts"), "rank-process": join(root, "test/gpu/rank-process-entry.ts"),
      "isolation-check": join(root, "test/gpu/isolation-check.ts"),
    },
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    // Dawn from .gpu-run/node_modules; tfjs-node only if a user installed it (never here).
    external: ["webgpu", "@tensorflow/tfjs-node", "@tensorflow/tfjs-node-gpu"],
    outdir: out,
    logLevel: "warning",
  });
  console.log(`built ${out}`);
}

void main();
