// allReduce between hosts that are Linux network namespaces on one bridge
// (veth pairs; each namespace runs Debian's sshd, as the real-hosts test
// does: test/kernel/netns_hosts.py), distlab next to PyTorch gloo between
// the same namespaces in the same run; and how long a group of 2 hosts x 2
// slots takes to start through the SSH launcher. Run: npm run bench:hosts
// (as root: it creates namespaces).
//
// distlab: `%%distributed --hosts HOSTFILE` cells through the SSH launcher,
//   one rank a namespace; inside the ranks, in-place allReduce calls (`{out}`,
//   as gloo's are) on a plain Float32Array over the TCP world between them.
// gloo: one /usr/bin/python3 process a namespace (`ip netns exec`), TCP
//   between them (bench/hosts_gloo.py).
// Both follow one plan per size: warm-up calls, then --reps blocks of calls (a
// barrier before each); a block's figure is the slowest rank's mean per call;
// rows give median [min, max] over the blocks; x gloo = gloo's median time / ours.
// busbw = bytes * 2(n-1)/n / time (nccl-tests).
// Group start: from the first cell's request to its result on a fresh group
// (ssh logins, agents, rank processes, their TCP world), --reps times; next to
// ipyparallel's ipcluster with its SSH engine launcher, 2 hosts x 2 engines,
// from start to a first apply_sync on every engine (bench/hosts_ipcluster.py).
// Then group start through Slurm next to ipyparallel's Slurm launcher (bench/hosts_slurm.mjs).
// Each distlab run goes twice: data connections authenticated only, and inside TLS (--data-tls on).
// --bare on adds a row of bare ranks: one process a namespace started with `ip netns exec`, joined
// in the TCP world, making the same calls with no kernel, agent, ssh channel or timeline
// (bench/hosts-bare-rank.cjs): what the transport alone costs, against what the hosts setup adds;
// the headline adds each bare rank's and each gloo rank's CPU a timed call (user / system ms).
// Flags: --reps N (>= 5)  --sizes 1M,16M,64M  --hosts 2,3  --data-tls off,on  --group-start on|off  --rounds N (distlab and gloo take turns N times, blocks pooled)  --bare off|on
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..");
const require = createRequire(import.meta.url);
require("tsx/cjs");
const { summarize, mapSummary, formatSummary, ratioOfMedians, repsOption, listOption, machineLine, formatTable } = require("./stats.ts");
const { CellCompiler } = require(path.join(root, "kernel/src/repl/cell-compiler.ts"));
const { DistributedSession } = require(path.join(root, "kernel/src/cluster/kernel-side/distributed-session.ts"));
const { TimelineObserver } = require(path.join(root, "kernel/src/cluster/kernel-side/timeline-observer.ts"));
const { parseDistributedFlags } = require(path.join(root, "kernel/src/magics/distributed-spec.ts"));
// The ExecutionIO the unit tests use: records output, never interrupted.
const { RecordingIO } = require(path.join(root, "test/unit/cluster-io.ts"));

const MiB = 1024 * 1024;
const argv = process.argv.slice(2);
const REPS = repsOption(argv);
const SIZES = listOption(argv, "sizes", ["1M", "16M", "64M"]).map((text) => {
  const m = /^(\d+)M$/.exec(text);
  if (!m) throw new RangeError(`--sizes: expected sizes like 1M, 16M, got ${JSON.stringify(text)}`);
  return Number(m[1]) * MiB;
});
const HOST_COUNTS = listOption(argv, "hosts", ["2", "3"]).map(Number);
// Data connections plain (authenticated only) and inside TLS (--data-tls on): the cost of encryption.
const DATA_TLS = listOption(argv, "data-tls", ["off", "on"]);
if (DATA_TLS.some((when) => when !== "off" && when !== "on")) throw new RangeError("--data-tls: off and/or on");
const GROUP_START = listOption(argv, "group-start", ["on"])[0];
const ROUNDS = Number(listOption(argv, "rounds", ["1"])[0]);
const BARE = listOption(argv, "bare", ["off"])[0];
if (BARE !== "on" && BARE !== "off") throw new RangeError("--bare: on or off");
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) throw new RangeError("--rounds: a positive integer");
if (GROUP_START !== "on" && GROUP_START !== "off") throw new RangeError("--group-start: on or off");
if (HOST_COUNTS.some((n) => !(n >= 2 && n <= 3))) throw new RangeError("--hosts: 2 and/or 3");
// About 64 MiB moved per block, at least 2 calls.
const plan = (bytes) => { const calls = Math.max(2, Math.floor((64 * MiB) / bytes)); return { op: "allReduce", bytes, calls, warmup: calls, reps: REPS }; };

if (process.getuid?.() !== 0) {
  console.error("bench:hosts creates network namespaces and runs sshd in them: run it as root");
  process.exit(1);
}

const dir = mkdtempSync(path.join(tmpdir(), "distlab-bench-hosts-"));
const netnsScript = path.join(root, "test/kernel/netns_hosts.py");
const netns = JSON.parse(execFileSync("python3", [netnsScript, "up", path.join(dir, "netns"), "3"], { encoding: "utf8" }));
const down = () => { try { execFileSync("python3", [netnsScript, "down", path.join(dir, "netns")]); } catch (error) { console.error(`teardown: ${error.message}`); } };
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => { down(); process.exit(130); });

const agentCommand = path.join(dir, "distlab");
writeFileSync(agentCommand, `#!/bin/sh\nexec ${process.execPath} ${path.join(root, "kernel/dist/cli.js")} "$@"\n`);
chmodSync(agentCommand, 0o755);

function hostfile(name, lines) {
  const file = path.join(dir, name);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

/** Runs one cell; resolves with its per-rank results or throws its error. */
async function cell(session, flags, body) {
  const io = new RecordingIO();
  const outcome = await session.runCell(body, 1, parseDistributedFlags(flags.split(" ")), io);
  if (outcome.status !== "ok") throw new Error(`${outcome.ename}: ${outcome.evalue}`);
  return outcome.result.data["application/json"];
}

/** distlab's blocks per size: each rank times the plan; a block's figure is the slowest rank's. */
async function distlab(session, n, entries, dataTls) {
  const flags = `-n ${n} --hosts ${hostfile(`hosts-${n}`, netns.hosts.slice(0, n).map((h) => `${h.name} slots=1`))} --ssh-config ${netns.ssh_config} --agent-command ${agentCommand} --timeout 120 --data-tls ${dataTls}`;
  const body = `
    const plan = ${JSON.stringify(entries)};
    const blocksOf = [];
    for (const e of plan) {
      const x = new Float32Array(e.bytes / 4).fill(dist.rank + 1);
      for (let i = 0; i < e.warmup; i++) await dist.allReduce(x, { out: x });
      const blocks = [];
      for (let r = 0; r < e.reps; r++) {
        await dist.barrier();
        const t0 = performance.now();
        for (let i = 0; i < e.calls; i++) await dist.allReduce(x, { out: x });
        blocks.push((performance.now() - t0) / e.calls);
      }
      blocksOf.push(blocks);
    }
    [require("os").hostname(), blocksOf]`;
  const perRank = await cell(session, flags, body);
  const hostnames = new Set(perRank.map(([hostname]) => hostname));
  if (hostnames.size !== n) throw new Error(`distlab ranks ran on ${[...hostnames].join(", ")}, not on ${n} namespaces`);
  return new Map(entries.map((entry, index) => [entry.bytes, entry.reps > 0 ? Array.from({ length: entry.reps }, (_, block) => Math.max(...perRank.map(([, blocksOf]) => blocksOf[index][block]))) : []]));
}

/** Bare ranks' blocks per size (--bare on): one node process a namespace, the TCP world between them. */
async function bare(n, entries) {
  const { startTcpRendezvous } = require(path.join(root, "kernel/dist/comm/tcp-world.js"));
  const rendezvous = await startTcpRendezvous(n, { host: `${netns.subnet}.1` });
  const credentials = JSON.stringify({ world: rendezvous.credentials.world, secret: rendezvous.credentials.secret.toString("hex") });
  const children = [];
  try {
    const perRank = await Promise.all(netns.hosts.slice(0, n).map((host, rank) => new Promise((resolve, reject) => {
      const spec = JSON.stringify({ rank, size: n, rendezvous: rendezvous.address, host: host.address, plan: entries });
      const child = spawn("ip", ["netns", "exec", host.namespace, process.execPath, path.join(here, "hosts-bare-rank.cjs"), spec], { stdio: ["pipe", "pipe", "inherit"] });
      children.push(child);
      child.stdin.end(credentials);
      let out = "";
      // a rank prints its line and waits: it is killed once every rank has printed (below)
      child.stdout.on("data", (d) => {
        out += d;
        if (out.endsWith("\n")) resolve(JSON.parse(out));
      });
      child.on("exit", (code) => reject(new Error(`bare rank ${rank} on ${host.name} exited with ${code} before its figures`)));
    })));
    // a block's figure is the slowest rank's, as for the other rows
    const blocks = new Map(entries.map((entry, index) => [entry.bytes, Array.from({ length: entry.reps }, (_, block) => Math.max(...perRank.map(({ ms }) => ms[index][block])))]));
    const cpu = new Map(entries.map((entry, index) => [entry.bytes, perRank.map((line) => line.cpu[index])]));
    return { blocks, cpu };
  } finally {
    for (const child of children) child.kill("SIGKILL");
    rendezvous.close();
  }
}

/** gloo's blocks per size, one python3 a namespace, and the ranks' [user, system] ms a timed call per size (as bare()). */
async function gloo(n, entries) {
  const port = 29600 + Math.floor(Math.random() * 1000);
  const blocks = new Map();
  const cpu = new Map();
  const procs = netns.hosts.slice(0, n).map((host, rank) => {
    const spec = JSON.stringify({ rank, size: n, master: netns.hosts[0].address, port, plan: entries });
    // GLOO_SOCKET_IFNAME: gloo would otherwise take the address the (shared) hostname resolves to, loopback.
    const py = spawn("ip", ["netns", "exec", host.namespace, "/usr/bin/python3", path.join(here, "hosts_gloo.py"), spec], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, GLOO_SOCKET_IFNAME: "eth0" },
    });
    let out = "";
    py.stdout.on("data", (d) => (out += d));
    return new Promise((resolve) => py.on("exit", (code) => {
      if (rank === 0) for (const line of out.split("\n").filter(Boolean)) { const r = JSON.parse(line); blocks.set(r.bytes, r.ms); cpu.set(r.bytes, r.cpu); }
      resolve(code);
    }));
  });
  const codes = await Promise.all(procs);
  if (codes.some((code) => code !== 0)) console.log(`# gloo exited with ${codes.join(", ")}: gloo columns empty (npm run bench:hosts installs python3-torch)`);
  return { blocks, cpu };
}

/** ipcluster's start times on the same namespaces (bench/hosts_ipcluster.py under the .venv's python), or undefined with a note. */
async function ipclusterStarts() {
  const spec = JSON.stringify({ ssh_config: netns.ssh_config, controller_ip: `${netns.subnet}.1`, engines: { h1: 2, h2: 2 }, reps: REPS, dir: path.join(dir, "ipcluster") });
  const py = spawn(path.join(root, ".venv/bin/python"), [path.join(here, "hosts_ipcluster.py"), spec], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  py.stdout.on("data", (d) => (out += d));
  py.stderr.on("data", (d) => (err += d));
  const code = await new Promise((resolve) => py.on("exit", resolve));
  const line = out.split("\n").find((text) => text.startsWith('{"ms"'));
  if (code !== 0 || !line) {
    console.log(`# ipcluster baseline failed (exit ${code}): ${err.trim().split("\n").slice(-3).join(" | ")}`);
    return undefined;
  }
  return JSON.parse(line).ms;
}

try {
  console.log(`# ${machineLine()}`);
  console.log(`# hosts: ${netns.hosts.map((h) => `${h.name}=${h.namespace} ${h.address}`).join(", ")} (veth pairs to bridge ${netns.bridge})`);
  const compiler = new CellCompiler();
  const headline = [];
  const rows = [["hosts", "size", "who", "time ms: median [min, max]", "busbw GB/s: median [min, max]", "x gloo"]];
  for (const n of HOST_COUNTS) {
    const entries = SIZES.map(plan);
    // --rounds: distlab and gloo take turns ROUNDS times and their blocks are pooled, so a swing of a
    // shared machine's load falls on both rather than on whichever ran during it
    const runs = {};
    const theirs = new Map();
    const bareRuns = new Map();
    // CPU a timed call, ms, [user, system] a rank (and round): where 3 ranks on 2 cores spend their time
    const bareCpu = new Map();
    const glooCpu = new Map();
    const pool = (into, from) => { for (const [bytes, blocks] of from) into.set(bytes, [...(into.get(bytes) ?? []), ...blocks]); };
    for (let round = 0; round < ROUNDS; round++) {
      for (const dataTls of DATA_TLS) {
        const session = new DistributedSession(compiler, new TimelineObserver());
        pool((runs[dataTls] ??= new Map()), await distlab(session, n, entries, dataTls));
        await session.stop();
      }
      if (BARE === "on") {
        const { blocks, cpu } = await bare(n, entries);
        pool(bareRuns, blocks);
        pool(bareCpu, cpu);
      }
      const { blocks, cpu } = await gloo(n, entries);
      pool(theirs, blocks);
      pool(glooCpu, cpu);
    }
    for (const entry of entries) {
      const toBusbw = (ms) => (entry.bytes * (2 * (n - 1)) / n) / (ms / 1000) / 1e9;
      const glooMs = theirs.get(entry.bytes);
      const glooTime = glooMs ? summarize(glooMs, `gloo ${n} hosts ${entry.bytes}`) : undefined;
      const size = `${entry.bytes / MiB} MiB`;
      if (glooTime) rows.push([String(n), size, "gloo", formatSummary(glooTime, 2), formatSummary(mapSummary(glooTime, toBusbw), 3), "1.00x"]);
      for (const dataTls of DATA_TLS) {
        const mine = summarize(runs[dataTls].get(entry.bytes), `distlab ${n} hosts ${entry.bytes} --data-tls ${dataTls}`);
        const ratio = glooTime ? `${ratioOfMedians(glooTime, mine).toFixed(2)}x` : "-";
        const who = `distlab (ssh launcher${dataTls === "on" ? ", --data-tls on" : ""})`;
        rows.push([String(n), size, who, formatSummary(mine, 2), formatSummary(mapSummary(mine, toBusbw), 3), ratio]);
        headline.push(`${n} hosts, ${size}: ${who} busbw ${formatSummary(mapSummary(mine, toBusbw), 3)} GB/s, ${glooTime ? `gloo ${formatSummary(mapSummary(glooTime, toBusbw), 3)} GB/s, ${ratio} gloo` : "no gloo figure"}`);
      }
      if (BARE === "on") {
        const mine = summarize(bareRuns.get(entry.bytes), `bare ranks ${n} hosts ${entry.bytes}`);
        const ratio = glooTime ? `${ratioOfMedians(glooTime, mine).toFixed(2)}x` : "-";
        rows.push([String(n), size, "distlab (bare ranks)", formatSummary(mine, 2), formatSummary(mapSummary(mine, toBusbw), 3), ratio]);
        headline.push(`${n} hosts, ${size}: distlab (bare ranks) busbw ${formatSummary(mapSummary(mine, toBusbw), 3)} GB/s, ${glooTime ? `${ratio} gloo` : "no gloo figure"}`);
      }
      const cpuLine = (who, perRank) => perRank?.length ? `${n} hosts, ${size}: ${who} CPU a call, ms user / system, each rank: ${perRank.map(([user, system]) => `${user.toFixed(1)} / ${system.toFixed(1)}`).join(", ")}` : undefined;
      for (const line of [cpuLine("gloo", glooCpu.get(entry.bytes)), cpuLine("distlab (bare ranks)", bareCpu.get(entry.bytes))]) if (line) headline.push(line);
      if (runs.on && runs.off) {
        const plain = summarize(runs.off.get(entry.bytes), "plain"), tls = summarize(runs.on.get(entry.bytes), "tls");
        headline.push(`${n} hosts, ${size}: --data-tls on takes ${ratioOfMedians(tls, plain).toFixed(2)}x the time of plain (ratio of medians)`);
      }
    }
  }
  console.log(formatTable(rows));

  // Group start: 2 hosts x 2 slots through ssh, a fresh group each time.
  if (GROUP_START === "on") await groupStart(compiler);
  console.log(`\n# allReduce (busbw median [min, max]; x gloo = ratio of medians)\n${headline.join("\n")}`);
  compiler.close();
  // Group start through Slurm next to ipyparallel's Slurm launcher (bench/hosts_slurm.mjs), where Slurm is installed.
  if (GROUP_START !== "on") console.log("\n# group start through Slurm: skipped (--group-start off)");
  else if (existsSync("/usr/sbin/slurmctld")) {
    console.log("");
    execFileSync(process.execPath, [path.join(here, "hosts_slurm.mjs"), "--reps", String(REPS)], { stdio: ["ignore", "inherit", "ignore"] });
  } else console.log("\n# group start through Slurm: skipped, Slurm is not installed (node scripts/setup.mjs --tests installs it)");
} finally {
  down();
}

async function groupStart(compiler) {
  const starts = [];
  const flags = `-n 4 --hosts ${hostfile("hosts-2x2", ["h1 slots=2", "h2 slots=2"])} --ssh-config ${netns.ssh_config} --agent-command ${agentCommand}`;
  for (let r = 0; r < REPS; r++) {
    const session = new DistributedSession(compiler, new TimelineObserver());
    const t0 = performance.now();
    const ranks = await cell(session, flags, "dist.rank");
    starts.push(performance.now() - t0);
    if (ranks.length !== 4) throw new Error(`group start: ${JSON.stringify(ranks)}`);
    await session.stop();
  }
  const start = summarize(starts, "group start");
  console.log(`\n# group start, 2 hosts x 2 slots through ssh (first cell's request to its result): ${formatSummary(start, 0)} ms over ${start.reps} starts`);
  const ipcluster = await ipclusterStarts();
  if (ipcluster) {
    const theirs = summarize(ipcluster, "ipcluster start");
    console.log(`# ipyparallel ipcluster, SSH engine launcher, 2 hosts x 2 engines (start to a first apply_sync on every engine): ${formatSummary(theirs, 0)} ms over ${theirs.reps} starts`);
    console.log(`# distlab / ipcluster: ${ratioOfMedians(start, theirs).toFixed(2)}x of its time (ratio of medians; target <= 0.5)`);
  }
}
