// bench:kernel: round trip of a trivial cell through jupyter_client, distlab
// (plain cell, `%%distributed -n 4` cell; each warm = same source, a compile-cache
// hit, and cold = a new literal each time) next to ipyparallel's execute on 4
// engines, all in one run. bench/kernel_roundtrip.py measures (flags pass
// through: --warmup N --calls N --reps N --skip-ipyparallel); this prints
// median [min, max] of the blocks and the ratios of medians.
// Then group start: the first `%%distributed -n 4` cell of a fresh kernel and
// a shape change, next to ipyparallel's cluster start, measured by
// bench/kernel_group_start.py (--kernels N --settle S; --group-start-only
// skips the round trips).
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
const GROUP_START_FLAGS = new Set(["--kernels", "--settle"]);
const args = process.argv.slice(2);
/** The flags of one script: `--name value` pairs it takes, and the flags both take. */
const flagsFor = (takesValue) =>
  args.flatMap((arg, i) => {
    if (arg === "--skip-ipyparallel") return [arg];
    if (arg.startsWith("--") && takesValue(arg) && args[i + 1] !== undefined) return [arg, args[i + 1]];
    return [];
  });
const known = new Set(["--warmup", "--calls", "--reps", "--skip-ipyparallel", "--group-start-only", ...GROUP_START_FLAGS]);
const unknown = args.filter((arg, i) => arg.startsWith("--") && !known.has(arg) && !(i > 0 && known.has(args[i - 1])));
if (unknown.length > 0) {
  console.error(`bench:kernel: unknown flag ${unknown.join(", ")} (known: ${[...known].join(", ")})`);
  process.exit(2);
}

/** Runs one of the measuring scripts; its JSON lines. */
function measure(script, flags) {
  const measured = spawnSync(python, [path.join(root, script), ...flags], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (measured.status !== 0) {
    console.error(`${script} exited with ${measured.status ?? measured.signal}${measured.error ? `: ${measured.error.message}` : ""}`);
    process.exit(1);
  }
  return measured.stdout.trim().split("\n").map((l) => JSON.parse(l));
}

if (!args.includes("--group-start-only")) printRoundTrips(measure("bench/kernel_roundtrip.py", flagsFor((flag) => !GROUP_START_FLAGS.has(flag) && flag !== "--group-start-only")));
printGroupStarts(measure("bench/kernel_group_start.py", flagsFor((flag) => GROUP_START_FLAGS.has(flag))));
console.log(`finished ${machineLine()}`);

function printRoundTrips(lines) {
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
}

function printGroupStarts(lines) {
  const { group_start_plan: plan } = lines.find((l) => l.group_start_plan);
  const figures = lines.filter((l) => l.figure).map((l) => [l.figure, summarize(l.ms, l.figure)]);
  const reference = (engines) => figures.find(([name]) => name.startsWith(`ipyparallel cluster start -n ${engines}`))?.[1];
  const rows = [["group start", "ms: median [min, max]", "x ipyparallel (same -n)"]];
  for (const [name, s] of figures) {
    const engines = name.includes("-n 2") ? 2 : 4;
    const wall = !name.startsWith("ipyparallel") && !name.endsWith("kernel CPU");
    const ratio = wall && reference(engines) ? ratioOfMedians(s, reference(engines)).toFixed(3) : "-";
    rows.push([name, formatSummary(s, 0), ratio]);
  }
  console.log(
    `\ngroup start: ${plan.kernels} fresh kernels (clusters) per figure; the first cell sent once the kernel's CPU time stopped growing ` +
      `(at most ${plan.settle_s} s), or "at once"; "kernel CPU": the kernel's CPU time over the cell, its rank threads and compiler processes included`,
  );
  console.log(formatTable(rows));
}
