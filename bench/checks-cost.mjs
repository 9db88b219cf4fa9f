// bench:checks-cost: what the communication checks (descriptor agreement, agreement frames of
// one-way collectives, cell epochs) cost. Builds the commit before they landed, the commit that
// added them, and measures both next to this checkout, in one run with the kernels taking turns
// (bench/checks_cost.py). Prints median [min, max] of the rounds and each build's ratio of
// medians to "before"; the target is at most 5% slower.
//
//   npm run bench:checks-cost [-- --rounds 31 --calls 500 --cells 20]
//   npm run bench:checks-cost -- --rev before=REV --rev checks=REV   (other commits to compare)
//
// Each REV is checked out with `git worktree add --detach` under the system's temporary folder
// (kept for the next run), given this checkout's node_modules and built with `tsc -b kernel`.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { summarize, formatSummary, ratioOfMedians, machineLine, formatTable } = require("./stats.ts");

/** The commit that added the checks and epochs; "before" is its parent. */
const CHECKS_COMMIT = "8b336fac54918a4049698c83ecc58944b7112532";
const revs = new Map([["before", `${CHECKS_COMMIT}^`], ["checks", CHECKS_COMMIT]]);
const passOn = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--rev") {
    const [name, rev] = (args[++i] ?? "").split("=");
    if (!name || !rev) throw new Error(`--rev takes NAME=REV, got ${JSON.stringify(args[i])}`);
    if (name === "after") throw new Error("--rev after=...: 'after' is this checkout");
    revs.set(name, rev);
  } else passOn.push(args[i]);
}

const git = (...a) => execFileSync("git", a, { cwd: root, encoding: "utf8" }).trim();

/** A built checkout of `rev` under the temporary folder. */
function checkoutOf(rev) {
  const sha = git("rev-parse", "--verify", `${rev}^{commit}`);
  const dir = path.join(tmpdir(), `distlab-bench-${sha.slice(0, 12)}`);
  if (!existsSync(dir)) git("worktree", "add", "--detach", dir, sha);
  if (!existsSync(path.join(dir, "node_modules"))) symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
  if (!existsSync(path.join(dir, "kernel/dist/cli.js"))) {
    console.log(`building ${rev} (${sha.slice(0, 12)}) in ${dir}`);
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-b", "kernel"], { cwd: dir, stdio: "inherit" });
  }
  return { sha, dir };
}

console.log(`bench:checks-cost  ${machineLine()}`);
const builds = [];
for (const [name, rev] of revs) {
  const { sha, dir } = checkoutOf(rev);
  builds.push({ name, label: `${name} (${sha.slice(0, 9)})`, dir });
}
builds.push({ name: "after", label: `after (this checkout, ${git("rev-parse", "--short=9", "HEAD")}${git("status", "--porcelain", "--untracked-files=no") ? " + changes" : ""})`, dir: root });

const python = path.join(root, ".venv/bin/python");
const measured = spawnSync(python, [path.join(root, "bench/checks_cost.py"), ...builds.map((b) => `--build=${b.name}=${b.dir}`), ...passOn], {
  cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"],
});
if (measured.status !== 0) {
  console.error(`bench/checks_cost.py exited with ${measured.status ?? measured.signal}${measured.error ? `: ${measured.error.message}` : ""}`);
  process.exit(1);
}
const lines = measured.stdout.trim().split("\n").map((l) => JSON.parse(l));
const figures = [...new Set(lines.map((l) => l.figure))];
const rows = [["figure", ...builds.flatMap((b) => [b.label, `${b.name} / before`])]];
let worst = 0;
for (const figure of figures) {
  const of = (name) => summarize(lines.find((l) => l.figure === figure && l.build === name).values, `${figure} ${name}`);
  const before = of("before");
  const row = [figure];
  for (const b of builds) {
    const s = of(b.name);
    const ratio = ratioOfMedians(s, before);
    if (b.name === "after") worst = Math.max(worst, ratio);
    row.push(formatSummary(s, 1), b.name === "before" ? "-" : ratio.toFixed(3));
  }
  rows.push(row);
}
console.log("\nmedian [min, max] of the rounds; ratios are of medians (above 1: slower than before)");
console.log(formatTable(rows));
console.log(`\nafter / before, worst figure: ${worst.toFixed(3)} (target at most 1.050: ${worst <= 1.05 ? "met" : "MISSED"})`);
console.log(`finished ${machineLine()}`);
