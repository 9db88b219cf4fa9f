// bench:kernel: round trip of a trivial cell through jupyter_client, distlab
// (plain cell, `%%distributed -n 4` cell; each warm = same source, a compile-cache
// hit, and cold = a new literal each time) next to ipyparallel's execute on 4
// engines, all in one run. bench/kernel_roundtrip.py measures (flags pass
// through: --warmup N --calls N --reps N --skip-ipyparallel); this prints
// median [min, max] of the blocks and the ratios of medians.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { summarize, formatSummary, ratioOfMedians, machineLine, formatTable } = require("./stats.ts");

console.log(`bench:kernel  ${machineLine()}`);
const python = path.join(root, ".venv/bin/python");
const measured = spawnSync(python, [path.join(root, "bench/kernel_roundtrip.py"), ...process.argv.slice(2)], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
if (measured.status !== 0) {
  console.error(`bench/kernel_roundtrip.py exited with ${measured.status ?? measured.signal}${measured.error ? `: ${measured.error.message}` : ""}`);
  process.exit(1);
}
const lines = measured.stdout.trim().split("\n").map((l) => JSON.parse(l));
const figures = new Map(lines.filter((l) => l.figure).map((l) => [l.figure, summarize(l.ms, l.figure)]));
const { starts_ms: starts, plan } = lines.find((l) => l.starts_ms);

const ipp = (temperature) => [...figures].find(([name]) => name.startsWith("ipyparallel") && name.endsWith(temperature))?.[1];
const rows = [["round trip", "ms: median [min, max]", "x ipyparallel (same temperature)"]];
for (const [name, s] of figures) {
  const reference = ipp(name.endsWith("cold") ? "cold" : "warm");
  const ratio = !name.startsWith("ipyparallel") && reference ? `${ratioOfMedians(s, reference).toFixed(3)}` : "-";
  rows.push([name, formatSummary(s, 2), ratio]);
}
console.log(`\n${plan.warmup} warm-up round trips, then ${plan.reps} blocks of ${plan.calls}, per figure (ms per round trip)`);
console.log(formatTable(rows));
for (const [what, ms] of Object.entries(starts)) console.log(`${what}: ${ms.toFixed(0)} ms (once)`);
console.log(`finished ${machineLine()}`);
