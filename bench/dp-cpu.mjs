// bench:dp-cpu: data-parallel training of the MLP (784-512-512-10, batch
// 256 per rank, SGD) on distlab's rank THREADS (TF.js wasm with distlab's
// overrides, gradients averaged through distlab's shm allReduce) against
// PyTorch DDP with gloo, one PROCESS per rank (its usual layout), one thread
// each. 1, 2 and 4 ranks (4 on this 2-core machine: both sides share the
// cores); all in this run. Both sides get the same plan: --rounds rounds,
// PyTorch and distlab alternating (a fresh group each per round: --warmup
// untimed steps, then --steps timed steps), so a busy spell of the shared
// machine lands on both; a step's time is the slowest rank's; each figure is
// the median [min, max] over the timed steps of all rounds, each ratio the
// ratio of medians. Target: 2 ranks >= 1.0x PyTorch's samples/s; 1 and 4
// ranks are reported.
// Flags: --steps N (default 20)  --warmup N (default 3)  --rounds N (default 3)
//        --ranks 1,2,4 (the group sizes); steps x rounds >= 5
import { Worker } from "node:worker_threads";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { baselineBlasEnv } from "./baseline-blas.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
// The rank threads share this process's V8 flags, which Node takes only on its command line
// (kernel/src/v8-start-flags.ts): start again with them where this Node needs them (Node 20).
const { v8StartFlags } = require(path.join(root, "kernel/src/v8-start-flags.ts"));
const missingFlags = v8StartFlags().filter((flag) => !process.execArgv.includes(flag));
if (missingFlags.length > 0) {
  execFileSync(process.execPath, [...process.execArgv, ...missingFlags, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(0);
}
const comm = require(path.join(root, "kernel/src/comm/index.ts"));
const { MIN_REPS, summarize, mapSummary, formatSummary, ratioOfMedians, intOption, machineLine, formatTable } = require("./stats.ts");
const argv = process.argv.slice(2);
const steps = intOption(argv, "steps", 20, 1);
const rounds = intOption(argv, "rounds", 3, 1);
if (steps * rounds < MIN_REPS) throw new RangeError(`--steps ${steps} x --rounds ${rounds}: at least ${MIN_REPS} timed steps per figure`);
const warmup = intOption(argv, "warmup", 3, 0);
const ranksFlag = argv.includes("--ranks") ? argv[argv.indexOf("--ranks") + 1] ?? "" : "1,2,4";
const sizes = ranksFlag.split(",").map(Number);
if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) throw new RangeError(`--ranks ${ranksFlag}: expected group sizes from 1 to 16, comma-separated (e.g. 1,2,4)`);
const batch = 256;
const python = process.env.DISTLAB_TORCH_PYTHON ?? "/usr/bin/python3";
// One thread for PyTorch's intra-op pool and its BLAS, with OpenBLAS's widest kernels where it does not
// know the CPU (baseline-blas.mjs); this process takes the same setting, for its rank threads.
const baselineBlas = baselineBlasEnv(python, { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" });
const oneThread = baselineBlas.env;
if (oneThread.OPENBLAS_CORETYPE) process.env.OPENBLAS_CORETYPE = oneThread.OPENBLAS_CORETYPE;

/** milliseconds of each timed step, the slowest rank's */
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
  return replies[0].stepMs.map((_, i) => Math.max(...replies.map((r) => r.stepMs[i])));
}

const freePort = () => new Promise((resolve) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
/** How long one PyTorch group may take (ms): a gloo group of 4 processes on 2 cores was once seen spinning without end. */
const TORCH_TIMEOUT_MS = 600_000;
const torch = async (ranks) => {
  const args = ["bench/dp_cpu_torch.py", "--ranks", String(ranks), "--steps", String(steps), "--warmup", String(warmup), "--port", String(await freePort())];
  let out;
  try {
    out = execFileSync(python, args, { cwd: root, env: oneThread, encoding: "utf8", timeout: TORCH_TIMEOUT_MS, killSignal: "SIGKILL" });
  } catch (error) {
    const why = error.signal === "SIGKILL" ? `did not finish within ${TORCH_TIMEOUT_MS / 1000} s` : `failed (exit ${error.status}): ${String(error.stderr).trim().split("\n").pop()}`;
    throw new Error(`PyTorch DDP on ${ranks} processes ${why}; stop any leftover '${python} bench/dp_cpu_torch.py' processes and run again`);
  }
  return JSON.parse(out.trim().split("\n").pop()).step_ms;
};

console.log(`bench:dp-cpu  ${machineLine()}`);
const rows = [["ranks", "PyTorch DDP gloo (processes): samples/s", "distlab (threads, TF.js wasm): samples/s", "ours/PyTorch", "target"]];
for (const size of sizes) {
  const samplesPerS = (ms) => (size * batch) / (ms / 1000);
  const torchMs = [], oursMs = [];
  for (let round = 0; round < rounds; round++) {
    torchMs.push(...(await torch(size)));
    oursMs.push(...(await distlab(size)));
  }
  const reference = summarize(torchMs, `PyTorch ${size} ranks`);
  const ours = summarize(oursMs, `distlab ${size} ranks`);
  const ratio = ratioOfMedians(reference, ours); // samples/s ratio = inverse ratio of step times
  rows.push([
    String(size),
    `${formatSummary(mapSummary(reference, samplesPerS), 0)} (${reference.median.toFixed(1)} ms/step)`,
    `${formatSummary(mapSummary(ours, samplesPerS), 0)} (${ours.median.toFixed(1)} ms/step)`,
    `${ratio.toFixed(2)}x`,
    size === 2 ? (ratio >= 1 ? ">= 1.0: met" : ">= 1.0: not met") : "(reported)",
  ]);
}
console.log(`finished ${machineLine()}`);
console.log(`PyTorch's BLAS: ${baselineBlas.note}.`);
console.log(`${rounds} alternating rounds of ${warmup} warm-up + ${steps} timed steps per side; samples/s median [min, max] over the timed steps; ratio of medians.`);
console.log(formatTable(rows));
