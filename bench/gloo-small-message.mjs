// Why gloo's small allReduce costs what it costs here: runs
// bench/gloo_small_message.py (see its docstring for the configurations) and
// prints, per configuration, ms per call as median [min, max] of --reps
// blocks, the per-call tail, CPU time and voluntary context switches per call,
// and whether gloo's TCP sockets have Nagle's algorithm off (TCP_NODELAY).
// Run: node bench/gloo-small-message.mjs [--warmup N] [--calls N] [--reps N]
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { summarize, formatSummary, percentile, intOption, repsOption, machineLine, formatTable } = require("./stats.ts");

const argv = process.argv.slice(2);
const plan = { warmup: intOption(argv, "warmup", 500, 20), calls: intOption(argv, "calls", 500), reps: repsOption(argv) };
const freePort = () => new Promise((resolve) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
const ports = [];
for (let i = 0; i < 5; i++) ports.push(await freePort());

console.log(`gloo small-message probe  ${machineLine()}`);
const run = spawnSync("/usr/bin/python3", [path.join(here, "gloo_small_message.py"), JSON.stringify({ ...plan, ports })], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
if (run.status !== 0) { console.error(`gloo_small_message.py exited with ${run.status ?? run.signal}`); process.exit(1); }
const rows = [["configuration", "ms/call: median [min, max]", "per call us: p50  p99  max", "time in calls > 1 ms", "first 20 calls: median us", "CPU us/call", "sleeps/call", "TCP_NODELAY"]];
for (const r of run.stdout.trim().split("\n").map((l) => JSON.parse(l))) {
  const total = r.calls_us.reduce((a, b) => a + b, 0);
  const slow = r.calls_us.filter((us) => us > 1000).reduce((a, b) => a + b, 0);
  rows.push([
    r.config,
    formatSummary(summarize(r.blocks_ms, r.config), 3),
    [0.5, 0.99, 1].map((f) => percentile(r.calls_us, f).toFixed(0)).join("  "),
    `${((100 * slow) / total).toFixed(0)}%`,
    percentile(r.first_calls_us, 0.5).toFixed(0),
    summarize(r.cpu_us, "cpu").median.toFixed(0),
    summarize(r.switches, "switches").median.toFixed(1),
    r.nodelay.length ? (r.nodelay.every(Boolean) ? `on (${r.nodelay.length} sockets)` : `OFF on ${r.nodelay.filter((f) => !f).length} of ${r.nodelay.length}`) : "no peer sockets",
  ]);
}
console.log(`${plan.warmup} warm-up calls, then ${plan.reps} blocks of ${plan.calls}; rank 0's view`);
console.log(formatTable(rows));
console.log(`finished ${machineLine()}`);
