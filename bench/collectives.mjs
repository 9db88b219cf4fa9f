// nccl-tests-style table for distlab's collectives (allReduce, allGather,
// reduceScatter, broadcast; 2 and 4 ranks; 4 KiB to 64 MiB) next to PyTorch
// gloo (Debian python3-torch), all measured in this run. Run: npm run bench:collectives
//
// Layouts. gloo: one process per rank, TCP loopback (what a gloo user runs).
// distlab:  shm        rank threads of one process (what `%%distributed` runs by default)
//           processes  one process per rank, Unix sockets between them (`--backend processes`)
//           tcp        one process per rank, forced onto TCP loopback (gloo's wire)
// Calls (how distlab is handed its arrays; gloo's calls are always in place):
//           default     plain Float32Array, no `out` (returns a fresh array)
//           in-place    plain Float32Array, `{out}` (allReduce/broadcast into their input)
//           registered  arrays from comm.alloc, `{out}` (shm only: the world's registered memory)
//           tensor      `dist.allReduce(t)` on a float32 tf.Tensor, through a cell's `dist` (TF.js wasm; allReduce only)
// Both sides follow one plan per (op, size): `warmup` untimed calls, then
// --reps blocks of `calls` calls (a barrier before each). A block's figure is
// the slowest rank's mean per call; each row is the median [min, max] of the
// blocks; "x gloo" is gloo's median time / ours (= ratio of busbw medians).
//   busbw (nccl-tests): allReduce algbw * 2(n-1)/n; allGather, reduceScatter algbw * (n-1)/n; broadcast algbw.
//   bytes: allReduce/broadcast the buffer, allGather the gathered output, reduceScatter the full input.
// Flags: --quick (4 KiB, 1 MiB, 64 MiB)  --sizes 4K,64K,64M  --ranks 2,4  --ops allReduce,...
//        --transports shm,processes,tcp  --calls default,in-place,registered,tensor  --reps N (>= 5)
//        --max-calls N (calls per block at the smallest sizes, default 500)  --algorithm ring (one algorithm for every op)
//        --spin-ms MS (shm: how long a waiting rank polls before it sleeps; default the world's, 1 ms)
//        --raw (also print every block's ms, in the order they ran)
import { Worker } from "node:worker_threads";
import { fork, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import * as path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
require("tsx/cjs");
// The shm ranks are Worker threads of this process, as thread ranks are of the kernel's: run under the
// V8 flags the kernel starts with (kernel/src/v8-start-flags.ts), re-running this script with them.
const startFlags = require(path.join(here, "../kernel/src/v8-start-flags.ts")).v8StartFlags();
if (!startFlags.every((flag) => process.execArgv.includes(flag))) {
  const rerun = spawnSync(process.execPath, [...process.execArgv, ...startFlags, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(rerun.status ?? 1);
}
const comm = require(path.join(here, "../kernel/src/comm/index.ts"));
const { summarize, mapSummary, formatSummary, ratioOfMedians, intOption, repsOption, listOption, machineLine, formatTable } = require("./stats.ts");

const KiB = 1024, MiB = 1024 * KiB;
const argv = process.argv.slice(2);
const parseSize = (text) => {
  const m = /^(\d+)([KM]?)$/.exec(text);
  if (!m) throw new RangeError(`--sizes: expected sizes like 4K, 64K, 64M or a byte count, got ${JSON.stringify(text)}`);
  return Number(m[1]) * (m[2] === "M" ? MiB : m[2] === "K" ? KiB : 1);
};
const SIZES = argv.includes("--quick") ? [4 * KiB, 1 * MiB, 64 * MiB]
  : listOption(argv, "sizes", ["4K", "16K", "64K", "256K", "1M", "4M", "16M", "64M"]).map(parseSize);
const RANKS = listOption(argv, "ranks", ["2", "4"]).map((r) => {
  if (!/^\d+$/.test(r) || Number(r) < 2) throw new RangeError(`--ranks: expected rank counts >= 2, got ${JSON.stringify(r)}`);
  return Number(r);
});
const TRANSPORTS = listOption(argv, "transports", ["shm", "processes", "tcp"], ["shm", "processes", "tcp"]);
const CALLS = listOption(argv, "calls", ["default", "in-place", "registered", "tensor"], ["default", "in-place", "registered", "tensor"]);
const OPS = listOption(argv, "ops", ["allReduce", "allGather", "reduceScatter", "broadcast"], ["allReduce", "allGather", "reduceScatter", "broadcast"]);
const ALGORITHM = listOption(argv, "algorithm", [""])[0] || undefined;
const REPS = repsOption(argv);
const MAX_CALLS = intOption(argv, "max-calls", 500);
const SPIN_MS = listOption(argv, "spin-ms", [""])[0];
if (SPIN_MS !== "" && !(Number(SPIN_MS) >= 0)) throw new RangeError(`--spin-ms: expected milliseconds >= 0, got ${JSON.stringify(SPIN_MS)}`);
// Calls per timed block: about 16 MiB moved per block, 1 to --max-calls calls. Warm-up: one block's
// worth, at least 5 calls (nccl-tests' default warm-up). Fewer left the JIT's first optimisations and
// V8's first collections, run on helper threads, inside the first timed calls of a fresh process,
// where they take one of the 2 cores from a rank: 64 MiB default calls 4 to 6 took 18-42 ms against
// 12-13 ms after, with helper-thread CPU time measured in those calls, and 15-18 ms under
// `node --single-threaded` (all of V8's work on the ranks' own threads).
const WARMUP_CALLS = 5;
const plan = (op, bytes) => { const calls = Math.max(1, Math.min(MAX_CALLS, Math.floor((16 * MiB) / bytes))); return { op, bytes, calls, warmup: Math.max(WARMUP_CALLS, calls), reps: REPS }; };
const busFactor = (op, n) => (op === "allReduce" ? (2 * (n - 1)) / n : op === "broadcast" ? 1 : (n - 1) / n);
/** which calls each layout runs: registered memory exists only in a shm world; tcp stands in for gloo's wire, in place like gloo */
const CALLS_OF = { shm: ["default", "in-place", "registered", "tensor"], processes: ["default", "in-place"], tcp: ["in-place"] };
/** the calls of `transport` timed for `op`: the tensor call for allReduce only */
const callsFor = (transport, op) => CALLS_OF[transport].filter((s) => CALLS.includes(s) && (s !== "tensor" || op === "allReduce"));

function memcpyMs() {
  const a = Buffer.alloc(64 * MiB, 1), b = Buffer.alloc(64 * MiB);
  a.copy(b);
  return Array.from({ length: REPS }, () => { const t = performance.now(); a.copy(b); return performance.now() - t; });
}

const freePort = () => new Promise((resolve) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); }); });

async function startRanks(transport, n) {
  let init, rendezvous;
  if (transport === "shm") init = comm.createShmWorld(n, SPIN_MS === "" ? {} : { spinMs: Number(SPIN_MS) });
  else rendezvous = await comm.startTcpRendezvous(n);
  const script = path.join(here, "collectives-worker.ts");
  const workers = [];
  const ready = [];
  for (let rank = 0; rank < n; rank++) {
    const setup = { transport, init, rank, size: n, rendezvous: rendezvous?.address };
    const w = transport === "shm"
      ? new Worker(`require("tsx/cjs"); require(${JSON.stringify(script)});`, { eval: true, workerData: setup })
      : fork(script, [JSON.stringify(setup)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    if (rendezvous) w.send({ world: rendezvous.credentials.world, secret: rendezvous.credentials.secret.toString("hex") });
    ready.push(new Promise((r) => w.once("message", r)));
    workers.push(w);
  }
  await Promise.all(ready);
  rendezvous?.close();
  let id = 0;
  return {
    /** milliseconds per call of each block, the slowest rank's */
    async time(entry, style) {
      const request = { ...entry, style, id: ++id, algorithm: ALGORITHM };
      const replies = await Promise.all(workers.map((w) => new Promise((resolve) => {
        const on = (m) => { if (m.id === request.id) { w.off("message", on); resolve(m); } };
        w.on("message", on);
        if (w.postMessage) w.postMessage(request);
        else w.send(request);
      })));
      const err = replies.find((r) => r.error);
      if (err) throw new Error(`${transport} ${style} ${entry.op} ${entry.bytes} bytes: ${err.error}`);
      return replies[0].ms.map((_, block) => Math.max(...replies.map((r) => r.ms[block])));
    },
    close: () => Promise.all(workers.map((w) => (w.terminate ? w.terminate() : w.kill()))),
  };
}

/** gloo's blocks per `${op}:${bytes}`; empty (with a warning) when PyTorch is missing */
async function gloo(n, entries) {
  const spec = JSON.stringify({ size: n, port: await freePort(), plan: entries });
  return new Promise((resolve) => {
    const out = new Map();
    const py = spawn("/usr/bin/python3", [path.join(here, "collectives_gloo.py"), spec], { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    py.stdout.on("data", (c) => (text += c));
    py.on("exit", (code) => {
      if (code !== 0) console.log(`# gloo baseline exited with ${code}: gloo columns empty (npm run bench:collectives installs python3-torch)`);
      for (const line of text.split("\n").filter(Boolean)) { const r = JSON.parse(line); out.set(`${r.op}:${r.bytes}`, r.ms); }
      resolve(out);
    });
    py.on("error", () => resolve(out));
  });
}

const fmtSize = (b) => (b >= MiB ? `${b / MiB} MiB` : b >= KiB ? `${b / KiB} KiB` : `${b} B`);
const LAYOUT = { shm: "distlab shm (threads)", processes: "distlab processes (unix)", tcp: "distlab tcp (processes)" };

console.log(`# bench:collectives  ${machineLine()}`);
console.log(`# ${REPS} blocks per row; ${ALGORITHM ? `algorithm ${ALGORITHM}` : "automatic algorithm choice"}; memcpy (Buffer.copy 64 MiB) ${formatSummary(mapSummary(summarize(memcpyMs(), "memcpy"), (ms) => (64 * MiB) / ms / 1e6), 2)} GB/s`);
console.log("# distlab shm ranks are THREADS of one process; gloo ranks and distlab processes/tcp ranks are processes.");
const headline = [];
/** with --raw: every row's blocks, ms in the order they ran */
const rawLines = [];
for (const n of RANKS) {
  const entries = OPS.flatMap((op) => SIZES.map((bytes) => plan(op, bytes)));
  const glooBlocks = await gloo(n, entries);
  const ours = new Map(); // `${transport}/${style}:${op}:${bytes}` -> blocks
  for (const transport of TRANSPORTS) {
    if (!entries.some((entry) => callsFor(transport, entry.op).length)) continue;
    const ranks = await startRanks(transport, n);
    for (const entry of entries) for (const style of callsFor(transport, entry.op)) ours.set(`${transport}/${style}:${entry.op}:${entry.bytes}`, await ranks.time(entry, style));
    await ranks.close();
  }
  console.log(`\n# ${n} ranks`);
  const rows = [["op", "size", "who", "call", "warm-up+calls", "time us: median [min, max]", "busbw GB/s: median [min, max]", "x gloo"]];
  for (const entry of entries) {
    const { op, bytes } = entry;
    const toBusbw = (ms) => (bytes / (ms / 1000) / 1e9) * busFactor(op, n);
    const glooMs = glooBlocks.get(`${op}:${bytes}`);
    // gloo ran the same plan: one figure per block, as many blocks as ours
    if (glooMs && glooMs.length !== entry.reps) throw new Error(`gloo ${op} ${bytes}: ${glooMs.length} blocks, the plan asked for ${entry.reps}`);
    const glooTime = glooMs && summarize(glooMs, `gloo ${op} ${bytes}`);
    const counts = `${entry.warmup}+${entry.reps}x${entry.calls}`;
    const line = (who, call, ms, ratio) => {
      const time = summarize(ms, `${who} ${op} ${bytes}`);
      if (argv.includes("--raw")) rawLines.push(`${op} ${fmtSize(bytes)} ${who} ${call} ms: ${ms.map((x) => x.toFixed(1)).join(", ")}`);
      rows.push([op, fmtSize(bytes), who, call, counts, formatSummary(mapSummary(time, (x) => x * 1000), 1), formatSummary(mapSummary(time, toBusbw), 2), ratio ? ratio(time) : "-"]);
      return time;
    };
    if (glooTime) line("gloo (processes, tcp)", "in-place", glooMs);
    else rows.push([op, fmtSize(bytes), "gloo (processes, tcp)", "-", counts, op === "reduceScatter" ? "none (gloo has no reduce_scatter)" : "n/a", "", "-"]);
    for (const transport of TRANSPORTS) {
      for (const style of callsFor(transport, op)) {
        const ratio = (time) => (glooTime ? `${ratioOfMedians(glooTime, time).toFixed(2)}x` : "-");
        const time = line(LAYOUT[transport], style, ours.get(`${transport}/${style}:${op}:${bytes}`), ratio);
        if (op === "allReduce" && bytes === 64 * MiB) headline.push(`${n} ranks, ${LAYOUT[transport]}, ${style}: busbw ${formatSummary(mapSummary(time, toBusbw), 2)} GB/s, ${glooTime ? `${ratioOfMedians(glooTime, time).toFixed(2)}x gloo (gloo ${formatSummary(mapSummary(glooTime, toBusbw), 2)})` : "no gloo figure"}`);
      }
    }
  }
  console.log(formatTable(rows));
  if (rawLines.length) console.log(rawLines.splice(0).join("\n"));
}
if (headline.length) console.log(`\n# allReduce 64 MiB (busbw median [min, max]; x gloo = ratio of medians)\n${headline.join("\n")}`);
console.log(`# finished ${machineLine()}`);
process.exit(0);
