// bench:compute: one training step of the MLP (784-512-512-10, batch 256,
// SGD) and of the tiny GPT (nanoGPT shakespeare_char CPU config, Adam) on
// TF.js wasm with distlab's kernel overrides, on stock TF.js wasm, and on
// PyTorch CPU with one thread, all in this run, printed side by side.
// Target (issue 6): ours at most 2x PyTorch's step time.
// Flags: --steps N (default 10)  --no-stock (skip the stock-wasm column, which is slow)
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const steps = args.includes("--steps") ? args[args.indexOf("--steps") + 1] : "10";
const python = process.env.DISTLAB_TORCH_PYTHON ?? "/usr/bin/python3";
// One thread for PyTorch's intra-op pool and for its BLAS (OpenBLAS has its own pool).
const oneThread = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };

const run = (command, argv) => JSON.parse(execFileSync(command, argv, { cwd: root, env: oneThread, encoding: "utf8" }).trim().split("\n").pop());
const tfjs = (extra) => run(process.execPath, ["--import", "tsx", "bench/compute-tf.ts", "--steps", steps, ...extra]);

const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`bench:compute  ${new Date().toISOString()}  load average before: ${load()}`);
const torch = run(python, ["bench/compute_torch.py", "--device", "cpu", "--steps", steps]);
const ours = tfjs(["--backend", "wasm"]);
// Stock wasm has no UnsortedSegmentSum kernel (tf.gather's gradient), so the tiny GPT cannot train there at all.
const stock = args.includes("--no-stock") ? undefined : tfjs(["--stock", "--only", "mlp", "--steps", "3", "--warmup", "1"]);
const torchAgain = run(python, ["bench/compute_torch.py", "--device", "cpu", "--steps", steps]);
console.log(`load average after: ${load()}   PyTorch ${torch.torch}, ${torch.threads} thread; TF.js ${ours.device}`);
console.log("PyTorch ran before and after TF.js; the table takes the faster of its two medians.\n");

const rows = [["training step", "PyTorch CPU 1 thread", "TF.js wasm (distlab)", "ratio ours/PyTorch", "target", "TF.js wasm stock"]];
for (const [key, label] of [["mlp", "MLP 784-512-512-10, b256, SGD"], ["gpt", "tiny GPT 4x128, T64, b12, Adam"]]) {
  const reference = Math.min(torch[`${key}_ms`], torchAgain[`${key}_ms`]);
  const ratio = ours[`${key}_ms`] / reference;
  rows.push([
    label,
    `${reference.toFixed(1)} ms`,
    `${ours[`${key}_ms`].toFixed(1)} ms`,
    `${ratio.toFixed(2)}x`,
    ratio <= 2 ? "<= 2x: met" : "<= 2x: NOT met",
    !stock ? "-" : key in { mlp: 1 } ? `${stock[`${key}_ms`].toFixed(1)} ms` : "cannot train (no gather gradient)",
  ]);
  if (ours[`${key}_leaked_tensors`] !== 0) console.log(`warning: ${key} leaked ${ours[`${key}_leaked_tensors`]} tensors per run`);
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join("  "));
