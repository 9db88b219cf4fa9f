// bench:dp-cpu: data-parallel training of the MLP (784-512-512-10, batch
// 256 per rank, SGD) on distlab's thread ranks (TF.js wasm with distlab's
// overrides, gradients averaged through distlab's shm allReduce) against
// PyTorch DDP with gloo, one process per rank, one thread each. 1 and 2
// ranks; all in this run. Target (issue 6): 2 ranks >= 0.5x PyTorch's samples/s.
// Flags: --steps N (default 30)
import { Worker } from "node:worker_threads";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const comm = require(path.join(root, "kernel/src/comm/index.ts"));
const args = process.argv.slice(2);
const steps = Number(args.includes("--steps") ? args[args.indexOf("--steps") + 1] : 30);
const warmup = 3;
const batch = 256;
const python = process.env.DISTLAB_TORCH_PYTHON ?? "/usr/bin/python3";
const oneThread = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };

async function distlab(size) {
  const init = comm.createShmWorld(size);
  const script = path.join(root, "bench/dp-cpu-rank.ts");
  const replies = await Promise.all(Array.from({ length: size }, (_, rank) => new Promise((resolve, reject) => {
    const worker = new Worker(`require("tsx/cjs"); require(${JSON.stringify(script)});`, { eval: true, workerData: { init, rank, size, steps, warmup, batch } });
    worker.once("message", (m) => { void worker.terminate(); m.error ? reject(new Error(m.error)) : resolve(m); });
    worker.once("error", reject);
  })));
  const checksums = replies.map((r) => r.checksum.toFixed(3));
  if (new Set(checksums).size !== 1) throw new Error(`ranks' weights differ after training: ${checksums.join(", ")}`);
  const seconds = Math.max(...replies.map((r) => r.seconds));
  return { samples_per_s: (size * batch * steps) / seconds, step_ms: (seconds / steps) * 1e3 };
}

const torch = (ranks) => JSON.parse(execFileSync(python, ["bench/dp_cpu_torch.py", "--ranks", String(ranks), "--steps", String(steps)], { cwd: root, env: oneThread, encoding: "utf8" }).trim().split("\n").pop());

const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`bench:dp-cpu  ${new Date().toISOString()}  ${steps} steps after ${warmup} warm-up  load average before: ${load()}`);
const rows = [["ranks", "PyTorch DDP gloo", "distlab threads (TF.js wasm)", "ratio ours/PyTorch", "target"]];
for (const size of [1, 2]) {
  const reference = torch(size);
  const ours = await distlab(size);
  const ratio = ours.samples_per_s / reference.samples_per_s;
  rows.push([
    String(size),
    `${Math.round(reference.samples_per_s)} samples/s (${reference.step_ms.toFixed(1)} ms/step)`,
    `${Math.round(ours.samples_per_s)} samples/s (${ours.step_ms.toFixed(1)} ms/step)`,
    `${ratio.toFixed(2)}x`,
    size === 2 ? (ratio >= 0.5 ? ">= 0.5: met" : ">= 0.5: NOT met") : "(context)",
  ]);
}
console.log(`load average after: ${load()}`);
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join("  "));
