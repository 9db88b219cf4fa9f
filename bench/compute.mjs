// bench:compute: one training step of the MLP (784-512-512-10, batch 256,
// SGD) and of the tiny GPT (nanoGPT shakespeare_char CPU config, Adam) on
// TF.js wasm with distlab's kernel overrides, on stock TF.js wasm, and on
// PyTorch CPU with one thread, all in this run, printed side by side.
// Target (issue 6): ours at most 2x PyTorch's step time.
// Flags: --steps N (default 10)  --rounds N (default 3)  --no-stock (skip the stock-wasm column, which is slow)
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
// The two sides alternate for --rounds rounds (default 3) and each keeps its best median: on a shared,
// loaded machine a busy moment then penalises neither side more than the other.
const rounds = Number(args.includes("--rounds") ? args[args.indexOf("--rounds") + 1] : 3);
const best = (a, b) => (a === undefined ? b : Object.fromEntries(Object.entries(b).map(([k, v]) => [k, k.endsWith("_ms") ? Math.min(v, a[k]) : v])));
let torch, ours;
for (let round = 0; round < rounds; round++) {
  torch = best(torch, run(python, ["bench/compute_torch.py", "--device", "cpu", "--steps", steps]));
  ours = best(ours, tfjs(["--backend", "wasm"]));
}
// Stock wasm has no UnsortedSegmentSum kernel (tf.gather's gradient), so the tiny GPT cannot train there at all.
const stock = args.includes("--no-stock") ? undefined : tfjs(["--stock", "--only", "mlp", "--steps", "3", "--warmup", "1"]);
console.log(`load average after: ${load()}   PyTorch ${torch.torch}, ${torch.threads} thread; TF.js ${ours.device}`);
console.log(`${rounds} alternating rounds of ${steps} timed steps each; each side's best median.\n`);

const rows = [["training step", "PyTorch CPU 1 thread", "TF.js wasm (distlab)", "ratio ours/PyTorch", "target", "TF.js wasm stock"]];
for (const [key, label] of [["mlp", "MLP 784-512-512-10, b256, SGD"], ["gpt", "tiny GPT 4x128, T64, b12, Adam"]]) {
  const reference = torch[`${key}_ms`];
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
