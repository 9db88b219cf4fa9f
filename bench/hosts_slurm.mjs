// Group start through Slurm: 2 agents x 2 ranks on a 2-node Slurm whose
// nodes are Linux network namespaces (test/kernel/netns_hosts.py; one slurmd
// each, test/kernel/slurm_cluster.py), next to ipyparallel's Slurm engine
// launcher (4 engines, 2 a node) on the same Slurm in the same run. Run by
// npm run bench:hosts after its other parts, or alone: node bench/hosts_slurm.mjs
// [--reps N] (as root: it creates namespaces and runs Slurm's daemons).
//
// distlab, from the first cell's request to its result on a fresh group:
//   in an allocation held for the run (salloc -N 2 --ntasks-per-node 1): the
//     kernel runs `srun` (--launcher slurm --slurm-per node), 2 agents, 2 ranks each;
//   submitted: --slurm "-N 2 --ntasks-per-node 1", sbatch then the same srun.
// ipyparallel: ipp.Cluster(engines="slurm"): sbatch of `srun` 4 engines, from
//   start to a first apply_sync on every engine (bench/hosts_ipcluster_slurm.py).
// Rows: median [min, max] over --reps starts each.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { summarize, formatSummary, ratioOfMedians, repsOption } = require("./stats.ts");
const { CellCompiler } = require(path.join(root, "kernel/src/repl/cell-compiler.ts"));
const { DistributedSession } = require(path.join(root, "kernel/src/cluster/kernel-side/distributed-session.ts"));
const { parseDistributedFlags } = require(path.join(root, "kernel/src/magics/distributed-spec.ts"));
const { splitArgs } = require(path.join(root, "kernel/src/magics/split-magic.ts"));
const { RecordingIO } = require(path.join(root, "test/unit/cluster-io.ts"));

const REPS = repsOption(process.argv.slice(2));
if (process.getuid?.() !== 0) {
  console.error("bench:hosts (Slurm) creates network namespaces and runs Slurm's daemons: run it as root");
  process.exit(1);
}

const dir = mkdtempSync(path.join(tmpdir(), "distlab-bench-slurm-"));
const netnsScript = path.join(root, "test/kernel/netns_hosts.py");
const netns = JSON.parse(execFileSync("python3", [netnsScript, "up", path.join(dir, "netns"), "2"], { encoding: "utf8" }));
const slurm = spawn("python3", [path.join(root, "test/kernel/slurm_cluster.py"), path.join(dir, "slurm"), path.join(dir, "netns")], { stdio: ["ignore", "pipe", "inherit"] });
const down = () => {
  slurm.kill("SIGTERM");
  try { execFileSync("python3", [netnsScript, "down", path.join(dir, "netns")]); } catch (error) { console.error(`teardown: ${error.message}`); }
};
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => { down(); process.exit(130); });

const agentCommand = path.join(dir, "distlab");
writeFileSync(agentCommand, `#!/bin/sh\nexec ${process.execPath} ${path.join(root, "kernel/dist/cli.js")} "$@"\n`);
chmodSync(agentCommand, 0o755);
const token = path.join(dir, "token");
writeFileSync(token, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });

async function cell(session, flags, body) {
  const io = new RecordingIO();
  const outcome = await session.runCell(body, 1, parseDistributedFlags(splitArgs(flags)), io);
  if (outcome.status !== "ok") throw new Error(`${outcome.ename}: ${outcome.evalue}`);
  return outcome.result.data["application/json"];
}

async function distlabStarts(compiler, flags) {
  const starts = [];
  for (let r = 0; r < REPS; r++) {
    const session = new DistributedSession(compiler);
    const t0 = performance.now();
    const nodes = await cell(session, flags, "process.env.SLURMD_NODENAME");
    starts.push(performance.now() - t0);
    if (nodes.join(",") !== "h1,h1,h2,h2") throw new Error(`group start: ranks on ${nodes.join(",")}`);
    await session.stop();
  }
  return summarize(starts, "distlab start");
}

function ipclusterStarts() {
  const spec = JSON.stringify({ controller_ip: `${netns.subnet}.1`, engines: 4, options: "--nodes=2 --ntasks-per-node=2", reps: REPS, dir: path.join(dir, "ipcluster") });
  const py = spawn(path.join(root, ".venv/bin/python"), [path.join(here, "hosts_ipcluster_slurm.py"), spec], { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  let out = "", err = "";
  py.stdout.on("data", (chunk) => (out += chunk));
  py.stderr.on("data", (chunk) => (err += chunk));
  return new Promise((resolve) => py.on("close", (code) => {
    if (code !== 0) {
      console.log(`# ipcluster (slurm) baseline failed (exit ${code}): ${err.trim().split("\n").slice(-3).join(" | ")}`);
      resolve(undefined);
    } else resolve(summarize(JSON.parse(out.trim().split("\n").pop()).ms, "ipcluster slurm start"));
  }));
}

try {
  const conf = await new Promise((resolve, reject) => {
    let text = "";
    slurm.stdout.on("data", (chunk) => {
      text += chunk;
      const found = /export SLURM_CONF=(\S+)/.exec(text);
      if (found) resolve(found[1]);
    });
    slurm.on("exit", (code) => reject(new Error(`slurm_cluster.py exited (${code})`)));
  });
  process.env.SLURM_CONF = conf;
  process.chdir(dir);
  console.log(`# Slurm nodes h1, h2: network namespaces ${netns.hosts.map((h) => `${h.namespace} ${h.address}`).join(", ")}`);
  const compiler = new CellCompiler();
  const common = `-n 4 --launcher slurm --slurm-per node --rendezvous ${netns.subnet}.1 --insecure --token-file ${token} --agent-command ${agentCommand} --timeout 60`;

  const granted = execFileSync("salloc", ["--no-shell", "-N", "2", "--ntasks-per-node", "1", "--time", "30"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  void granted;
  const job = /^(\d+) /m.exec(execFileSync("squeue", ["--noheader", "--format", "%i %T"], { encoding: "utf8" }))[1];
  Object.assign(process.env, { SLURM_JOB_ID: job, SLURM_NTASKS: "2", SLURM_JOB_NUM_NODES: "2", SLURM_NNODES: "2" });
  const inAllocation = await distlabStarts(compiler, common);
  execFileSync("scancel", [job]);
  for (const name of ["SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_JOB_NUM_NODES", "SLURM_NNODES"]) delete process.env[name];
  const submitted = await distlabStarts(compiler, `${common} --slurm "-N 2 --ntasks-per-node 1 --time 5"`);
  compiler.close();
  const theirs = await ipclusterStarts();

  console.log(`# group start through Slurm, 2 nodes (first cell's request to its result), ${REPS} starts each:`);
  console.log(`#   distlab --launcher slurm, srun in a held allocation, 2 agents x 2 ranks: ${formatSummary(inAllocation, 0)} ms`);
  console.log(`#   distlab --launcher slurm --slurm ARGS, sbatch then srun, 2 agents x 2 ranks: ${formatSummary(submitted, 0)} ms`);
  if (theirs) {
    console.log(`#   ipyparallel ipcluster --engines=slurm, sbatch then srun, 4 engines: ${formatSummary(theirs, 0)} ms`);
    console.log(`# distlab (allocation) / ipcluster: ${ratioOfMedians(inAllocation, theirs).toFixed(2)}x; distlab (sbatch) / ipcluster: ${ratioOfMedians(submitted, theirs).toFixed(2)}x (ratio of medians; target <= 0.5)`);
  }
} finally {
  down();
}
