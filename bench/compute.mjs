// bench:compute: one training step of the MLP (784-512-512-10, batch 256,
// SGD) and of the tiny GPT (nanoGPT shakespeare_char CPU config, Adam) on
// TF.js wasm with distlab's kernel overrides, on stock TF.js wasm, and on
// PyTorch CPU with one thread, all in this run, printed side by side.
// Every side gets the same plan: --rounds rounds, PyTorch and ours alternating
// (one process each per round: --warmup untimed steps, then --steps timed steps),
// so a busy spell of the shared machine lands on both; each figure is the median
// [min, max] of all timed steps of all rounds, each ratio the ratio of medians.
// Target: ours at most PyTorch's step time (ratio <= 1.0). Then, in the same
// run, bench/dp-cpu.mjs prints the data-parallel rows (1, 2 and 4 ranks) with
// the same --rounds.
// Flags: --steps N (default 10)  --warmup N (default 3)  --rounds N (default 3; steps x rounds >= 5)
//        --no-stock (skip the slow stock-wasm column; stock runs one round)
//        --no-dp (skip the data-parallel rows)
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { baselineBlasEnv } from "./baseline-blas.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { MIN_REPS, summarize, formatSummary, ratioOfMedians, intOption, machineLine, formatTable } = require("./stats.ts");

const argv = process.argv.slice(2);
const steps = String(intOption(argv, "steps", 10, 1));
const rounds = intOption(argv, "rounds", 3, 1);
if (Number(steps) * rounds < MIN_REPS) throw new RangeError(`--steps ${steps} x --rounds ${rounds}: at least ${MIN_REPS} timed steps per figure`);
const warmup = String(intOption(argv, "warmup", 3, 0));
const python = process.env.DISTLAB_TORCH_PYTHON ?? "/usr/bin/python3";
// One thread for PyTorch's intra-op pool and for its BLAS (OpenBLAS has its own pool), with
// OpenBLAS's widest kernels where it does not know the CPU (baseline-blas.mjs).
const baselineBlas = baselineBlasEnv(python, { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" });
const oneThread = baselineBlas.env;

const run = (command, args) => JSON.parse(execFileSync(command, args, { cwd: root, env: oneThread, encoding: "utf8" }).trim().split("\n").pop());
const plan = ["--steps", steps, "--warmup", warmup];
// The V8 flags the wasm kernels need from a process's start (kernel/src/v8-start-flags.ts), as a rank process gets them.
const v8Flags = () => { require("tsx/cjs"); return require(path.join(root, "kernel/src/v8-start-flags.ts")).v8StartFlags(); };
const tfjs = (extra) => run(process.execPath, [...v8Flags(), "--import", "tsx", "bench/compute-tf.ts", ...plan, ...extra]);

console.log(`bench:compute  ${machineLine()}`);
/** one round's result with each `*_ms` list appended to the rounds before */
const pool = (before, round) => (before ? Object.fromEntries(Object.entries(round).map(([k, v]) => [k, k.endsWith("_ms") ? [...before[k], ...v] : v])) : round);
let torch, ours;
for (let round = 0; round < rounds; round++) {
  torch = pool(torch, run(python, ["bench/compute_torch.py", "--device", "cpu", ...plan]));
  ours = pool(ours, tfjs(["--backend", "wasm"]));
}
// Stock wasm has no UnsortedSegmentSum kernel (tf.gather's gradient), so the tiny GPT cannot train there at all.
const stock = argv.includes("--no-stock") ? undefined : tfjs(["--stock", "--only", "mlp"]);
console.log(`finished ${machineLine()}`);
console.log(`PyTorch ${torch.torch}, ${torch.threads} thread, BLAS ${baselineBlas.note}; TF.js ${ours.device}.`);
console.log(`${rounds} alternating rounds of ${warmup} warm-up + ${steps} timed steps per side (stock: 1 round); ms per step, median [min, max] of the timed steps; ratio of medians.\n`);

const rows = [["training step", "PyTorch CPU 1 thread", "TF.js wasm (distlab)", "ours/PyTorch", "target <= 1.0x", "TF.js wasm stock"]];
for (const [key, label] of [["mlp", "MLP 784-512-512-10, b256, SGD"], ["gpt", "tiny GPT 4x128, T64, b12, Adam"]]) {
  const reference = summarize(torch[`${key}_ms`], `PyTorch ${key}`);
  const mine = summarize(ours[`${key}_ms`], `distlab ${key}`);
  const ratio = ratioOfMedians(mine, reference);
  rows.push([
    label,
    formatSummary(reference),
    formatSummary(mine),
    `${ratio.toFixed(2)}x`,
    ratio <= 1 ? "met" : "not met",
    !stock ? "-" : key === "mlp" ? formatSummary(summarize(stock.mlp_ms, "stock mlp")) : "cannot train (no gather gradient)",
  ]);
  if (ours[`${key}_leaked_tensors`] !== 0) console.log(`warning: ${key} leaked ${ours[`${key}_leaked_tensors`]} tensors per run`);
}
console.log(formatTable(rows));

if (!argv.includes("--no-dp")) {
  console.log("");
  execFileSync(process.execPath, [path.join(root, "bench/dp-cpu.mjs"), "--rounds", String(rounds)], { cwd: root, stdio: "inherit", env: oneThread });
}
