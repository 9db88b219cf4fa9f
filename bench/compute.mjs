// bench:compute: one training step of the MLP (784-512-512-10, batch 256,
// SGD) and of the tiny GPT (nanoGPT shakespeare_char CPU config, Adam) on
// TF.js wasm with distlab's kernel overrides, on stock TF.js wasm, and on
// PyTorch CPU with one thread, all in this run, printed side by side.
// Every side runs once with the same plan: --warmup untimed steps, then --steps
// timed steps (>= 5); each figure is the median [min, max] of the timed steps,
// each ratio the ratio of medians. Target: ours at most 2x PyTorch's step time.
// Flags: --steps N (default 10, >= 5)  --warmup N (default 3)  --no-stock (skip the slow stock-wasm column)
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { MIN_REPS, summarize, formatSummary, ratioOfMedians, intOption, machineLine, formatTable } = require("./stats.ts");

const argv = process.argv.slice(2);
const steps = String(intOption(argv, "steps", 10, MIN_REPS));
const warmup = String(intOption(argv, "warmup", 3, 0));
const python = process.env.DISTLAB_TORCH_PYTHON ?? "/usr/bin/python3";
// One thread for PyTorch's intra-op pool and for its BLAS (OpenBLAS has its own pool).
const oneThread = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };

const run = (command, args) => JSON.parse(execFileSync(command, args, { cwd: root, env: oneThread, encoding: "utf8" }).trim().split("\n").pop());
const plan = ["--steps", steps, "--warmup", warmup];
const tfjs = (extra) => run(process.execPath, ["--import", "tsx", "bench/compute-tf.ts", ...plan, ...extra]);

console.log(`bench:compute  ${machineLine()}`);
const torch = run(python, ["bench/compute_torch.py", "--device", "cpu", ...plan]);
const ours = tfjs(["--backend", "wasm"]);
// Stock wasm has no UnsortedSegmentSum kernel (tf.gather's gradient), so the tiny GPT cannot train there at all.
const stock = argv.includes("--no-stock") ? undefined : tfjs(["--stock", "--only", "mlp"]);
console.log(`finished ${machineLine()}`);
console.log(`PyTorch ${torch.torch}, ${torch.threads} thread; TF.js ${ours.device}. Each side once, one after the other:`);
console.log(`${warmup} warm-up steps, then ${steps} timed steps; ms per step, median [min, max]; ratio of medians.\n`);

const rows = [["training step", "PyTorch CPU 1 thread", "TF.js wasm (distlab)", "ours/PyTorch", "target <= 2x", "TF.js wasm stock"]];
for (const [key, label] of [["mlp", "MLP 784-512-512-10, b256, SGD"], ["gpt", "tiny GPT 4x128, T64, b12, Adam"]]) {
  const reference = summarize(torch[`${key}_ms`], `PyTorch ${key}`);
  const mine = summarize(ours[`${key}_ms`], `distlab ${key}`);
  const ratio = ratioOfMedians(mine, reference);
  rows.push([
    label,
    formatSummary(reference),
    formatSummary(mine),
    `${ratio.toFixed(2)}x`,
    ratio <= 2 ? "met" : "not met",
    !stock ? "-" : key === "mlp" ? formatSummary(summarize(stock.mlp_ms, "stock mlp")) : "cannot train (no gather gradient)",
  ]);
  if (ours[`${key}_leaked_tensors`] !== 0) console.log(`warning: ${key} leaked ${ours[`${key}_leaked_tensors`]} tensors per run`);
}
console.log(formatTable(rows));
