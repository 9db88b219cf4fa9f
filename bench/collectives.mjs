// nccl-tests-style table for distlab's collectives: allReduce, allGather,
// reduceScatter, broadcast on 2 and 4 ranks over shm and tcp, 4 KiB to
// 64 MiB, next to PyTorch gloo (Debian python3-torch) and memcpy bandwidth,
// all measured in this run. Run: npm run bench:collectives
//   time: slowest rank's average per call; algbw = bytes / time;
//   busbw (nccl-tests): allReduce algbw * 2(n-1)/n; allGather, reduceScatter algbw * (n-1)/n; broadcast algbw.
//   bytes: allReduce/broadcast the buffer, allGather the gathered output, reduceScatter the full input.
// shm ranks are worker threads of this process; tcp ranks are separate
// processes over TCP loopback (not the same-host Unix-socket path), as gloo's
// ranks are. shm-registered is shm with every array from comm.alloc (the
// world's registered memory, read and written in place). All run the
// TypeScript sources through tsx.
// Flags: --quick (4 KiB, 1 MiB, 64 MiB), --ranks 2,4  --transports shm,shm-registered,tcp
//        --ops allReduce,...  --algorithm ring (one algorithm for every op).
import { Worker } from "node:worker_threads";
import { fork, spawn } from "node:child_process";
import * as path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
require("tsx/cjs");
const comm = require(path.join(here, "../kernel/src/comm/index.ts"));

const KiB = 1024, MiB = 1024 * KiB;
const args = process.argv.slice(2);
const flag = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1].split(",") : fallback; };
const quick = args.includes("--quick");
const SIZES = quick ? [4 * KiB, 1 * MiB, 64 * MiB] : [4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB];
const RANKS = flag("ranks", ["2", "4"]).map(Number);
const TRANSPORTS = flag("transports", ["shm", "shm-registered", "tcp"]);
const KNOWN_TRANSPORTS = ["shm", "shm-registered", "tcp"];
for (const t of TRANSPORTS) if (!KNOWN_TRANSPORTS.includes(t)) throw new Error(`--transports: unknown transport ${t} (known: ${KNOWN_TRANSPORTS.join(", ")})`);
const OPS = flag("ops", ["allReduce", "allGather", "reduceScatter", "broadcast"]);
const ALGORITHM = flag("algorithm", [undefined])[0];
const iters = (bytes) => Math.max(10, Math.min(10_000, Math.floor((256 * MiB) / bytes)));
const busFactor = (op, n) => (op === "allReduce" ? (2 * (n - 1)) / n : op === "broadcast" ? 1 : (n - 1) / n);

function memcpyGBps() {
  const a = Buffer.alloc(64 * MiB, 1), b = Buffer.alloc(64 * MiB);
  let best = Infinity;
  for (let i = 0; i < 10; i++) { const t = performance.now(); a.copy(b); best = Math.min(best, performance.now() - t); }
  return (64 * MiB) / (best / 1000) / 1e9;
}

async function startRanks(transport, n) {
  let init, rendezvous;
  const registered = transport === "shm-registered";
  if (registered) transport = "shm";
  if (transport === "shm") init = comm.createShmWorld(n);
  else rendezvous = await comm.startTcpRendezvous(n);
  const workers = [];
  const ready = [];
  const script = path.join(here, "collectives-worker.ts");
  for (let rank = 0; rank < n; rank++) {
    const setup = { transport, init, rank, size: n, rendezvous: rendezvous?.address, registered };
    const w = transport === "shm"
      ? new Worker(`require("tsx/cjs"); require(${JSON.stringify(script)});`, { eval: true, workerData: setup })
      : fork(script, [JSON.stringify(setup)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    ready.push(new Promise((r) => w.once("message", r)));
    workers.push(w);
  }
  await Promise.all(ready);
  rendezvous?.close();
  let id = 0;
  return {
    async time(op, bytes) {
      const myId = ++id;
      const replies = await Promise.all(workers.map((w) => new Promise((resolve) => {
        const on = (m) => { if (m.id === myId) { w.off("message", on); resolve(m); } };
        w.on("message", on);
        const request = { id: myId, op, bytes, iters: iters(bytes), algorithm: ALGORITHM };
        if (w.postMessage) w.postMessage(request);
        else w.send(request);
      })));
      const err = replies.find((r) => r.error);
      if (err) throw new Error(err.error);
      return Math.max(...replies.map((r) => r.ms));
    },
    close: () => Promise.all(workers.map((w) => (w.terminate ? w.terminate() : w.kill()))),
  };
}

function gloo(n) {
  return new Promise((resolve) => {
    const out = new Map();
    const py = spawn("/usr/bin/python3", [path.join(here, "collectives_gloo.py"), String(n), SIZES.join(","), String(29500 + n * 7)], { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    py.stdout.on("data", (c) => (text += c));
    py.on("exit", () => {
      for (const line of text.split("\n").filter(Boolean)) { const r = JSON.parse(line); out.set(`${r.op}:${r.bytes}`, r.ms); }
      resolve(out);
    });
    py.on("error", () => resolve(out));
  });
}

const fmtSize = (b) => (b >= MiB ? `${b / MiB} MiB` : `${b / KiB} KiB`);
const pad = (s, w) => String(s).padStart(w);

const memcpy = memcpyGBps();
console.log(`# memcpy (Buffer.copy, 64 MiB): ${memcpy.toFixed(2)} GB/s`);
const results = [];
console.log(`# load average ${(await import("node:os")).loadavg().map((l) => l.toFixed(2)).join(" ")}; ${ALGORITHM ? `algorithm ${ALGORITHM}` : "automatic algorithm choice"}`);
for (const n of RANKS) {
  const glooTimes = await gloo(n);
  for (const transport of TRANSPORTS) {
    const ranks = await startRanks(transport, n);
    const about = { tcp: " (TCP loopback)", "shm-registered": " (arrays from comm.alloc)" }[transport] ?? "";
    console.log(`\n# ${transport}, ${n} ranks${about}; gloo ${n} processes`);
    console.log(`#${pad("op", 14)}${pad("size", 10)}${pad("time(us)", 11)}${pad("algbw", 8)}${pad("busbw", 8)}${pad("gloo busbw", 12)}${pad("x gloo", 8)}${pad("x memcpy", 10)}`);
    for (const op of OPS) {
      for (const bytes of SIZES) {
        const ms = await ranks.time(op, bytes);
        const algbw = bytes / (ms / 1000) / 1e9;
        const busbw = algbw * busFactor(op, n);
        const g = glooTimes.get(`${op}:${bytes}`);
        const glooBus = g ? (bytes / (g / 1000) / 1e9) * busFactor(op, n) : undefined;
        results.push({ transport, n, op, bytes, us: ms * 1000, busbw, glooBus });
        console.log(` ${pad(op, 14)}${pad(fmtSize(bytes), 10)}${pad((ms * 1000).toFixed(1), 11)}${pad(algbw.toFixed(2), 8)}${pad(busbw.toFixed(2), 8)}` +
          `${pad(glooBus ? glooBus.toFixed(2) : "n/a", 12)}${pad(glooBus ? (busbw / glooBus).toFixed(2) : "-", 8)}${pad((busbw / memcpy).toFixed(2), 10)}`);
      }
    }
    await ranks.close();
  }
}
const pick = (t, n, op, b) => results.find((r) => r.transport === t && r.n === n && r.op === op && r.bytes === b);
console.log("\n# targets");
for (const n of RANKS) {
  for (const shm of ["shm", "shm-registered"]) {
    const s = pick(shm, n, "allReduce", 64 * MiB);
    if (s) console.log(`${shm} allReduce 64 MiB ${n} ranks: busbw ${s.busbw.toFixed(2)} GB/s = ${s.glooBus ? (s.busbw / s.glooBus).toFixed(2) : "?"}x gloo (target >= 4), ${(s.busbw / memcpy).toFixed(2)} of memcpy (target >= 0.5)`);
  }
  const t = pick("tcp", n, "allReduce", 64 * MiB);
  if (t) console.log(`tcp allReduce 64 MiB ${n} ranks: busbw ${t.busbw.toFixed(2)} GB/s = ${t.glooBus ? (t.busbw / t.glooBus).toFixed(2) : "?"}x gloo (target >= 1.0)`);
}
for (const shm of ["shm", "shm-registered"]) {
  const small = pick(shm, 2, "allReduce", 4 * KiB);
  if (small) console.log(`${shm} allReduce 4 KiB 2 ranks: ${small.us.toFixed(1)} us (target < 50 us); gloo ${small.glooBus ? ((4 * KiB) / (small.glooBus * 1e9) * 1e6).toFixed(1) + " us" : "n/a"}`);
}
process.exit(0);
