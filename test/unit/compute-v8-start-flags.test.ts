// The V8 flags distlab's processes need from their start (kernel/src/v8-start-flags.ts), checked on real
// processes and threads of this Node: a process started with v8StartFlags() compiles relaxed SIMD, a
// rank thread started with threadExecArgv() from such a process does too, and a process rank's command
// line carries the flags whatever the kernel was started with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { nodeRankCommand } from "../../kernel/src/cluster/backends/processes/process-rank-handle";
import { processExecArgv, threadExecArgv } from "../../kernel/src/cluster/backends/rank-entry-points";
import { RELAXED_SIMD_FLAG, SINGLE_THREADED_GC_FLAG, V8_START_FLAGS, v8StartFlags } from "../../kernel/src/v8-start-flags";

const flagsModule = path.resolve(__dirname, "../../kernel/src/v8-start-flags.ts");
const entryPoints = path.resolve(__dirname, "../../kernel/src/cluster/backends/rank-entry-points.ts");
const nodeMajor = Number(process.versions.node.split(".")[0]);

/**
 * Runs `script` (CommonJS, tsx loaded) from a file in a fresh `node` with `flags` (a file, not `-e`: the
 * kernel's execArgv holds only flags, and a rank's execArgv starts from it); returns its last stdout line.
 */
function inNode(flags: string[], script: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "distlab-v8-flags-"));
  try {
    const file = path.join(dir, "script.js");
    writeFileSync(file, script);
    const out = execFileSync(process.execPath, [...flags, "--require", "tsx/cjs", file], { encoding: "utf8", timeout: 60_000 });
    return out.trim().split("\n").pop() ?? "";
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const COMPILES = `console.log(require(${JSON.stringify(flagsModule)}).relaxedSimdCompiles())`;

test("a node started with v8StartFlags() compiles relaxed SIMD; Node 20 needs the flag for it, Node 22 none", () => {
  assert.equal(inNode(v8StartFlags(), COMPILES), "true");
  const plain = inNode([], COMPILES);
  if (nodeMajor < 22) {
    assert.equal(plain, "false", "Node 20 without the flag does not compile relaxed SIMD (what the flag is for)");
    assert.deepEqual(inNode([], `console.log(JSON.stringify(require(${JSON.stringify(flagsModule)}).v8StartFlags()))`), JSON.stringify([RELAXED_SIMD_FLAG, SINGLE_THREADED_GC_FLAG]));
  } else {
    assert.equal(plain, "true");
  }
});

test("a rank thread started with threadExecArgv() from a flagged kernel process compiles relaxed SIMD", () => {
  const script = `
    const { Worker } = require("node:worker_threads");
    const { threadExecArgv } = require(${JSON.stringify(entryPoints)});
    const worker = new Worker(${JSON.stringify(`require("tsx/cjs"); require("node:worker_threads").parentPort.postMessage(require(${JSON.stringify(flagsModule)}).relaxedSimdCompiles())`)}, { eval: true, execArgv: threadExecArgv() });
    worker.on("message", (value) => { console.log(JSON.stringify({ value, execArgv: threadExecArgv() })); process.exit(0); });
    worker.on("error", (error) => { console.log(JSON.stringify({ error: error.code + ": " + error.message })); process.exit(0); });`;
  const reply = JSON.parse(inNode(v8StartFlags(), script)) as { value?: boolean; error?: string; execArgv?: string[] };
  assert.equal(reply.error, undefined, "the Worker accepted its execArgv");
  assert.equal(reply.value, true, "V8 flags are per process: the thread has the kernel's");
  for (const flag of V8_START_FLAGS) assert.ok(!reply.execArgv!.includes(flag), `a Worker refuses ${flag} in execArgv (ERR_WORKER_INVALID_EXEC_ARGV)`);
});

test("a process rank's command line carries the V8 start flags, and a rank process started so compiles relaxed SIMD", () => {
  for (const flag of v8StartFlags()) {
    assert.ok(processExecArgv().includes(flag), `processExecArgv has ${flag}`);
    assert.ok(nodeRankCommand().includes(flag), `nodeRankCommand has ${flag}`);
  }
  assert.ok(!threadExecArgv().some((flag) => V8_START_FLAGS.includes(flag)));
  const [, ...args] = nodeRankCommand();
  const flags = args.slice(0, -1).filter((arg) => arg !== "--require" && arg !== "tsx/cjs");
  assert.equal(inNode(flags, COMPILES), "true");
});

// A process's threads other than the main one, with the CPU time each ran (schedstat, ns), after 20
// full collections of a 100 MB heap: V8's helper threads mark beside the main thread unless the
// process was started with --single-threaded-gc.
const HELPER_CPU = `
  const fs = require("node:fs");
  const keep = Array.from({ length: 400 }, () => Array.from({ length: 10000 }, (_, i) => ({ i })));
  for (let i = 0; i < 20; i++) globalThis.gc();
  let helpersNs = 0;
  for (const tid of fs.readdirSync("/proc/self/task")) {
    if (Number(tid) === process.pid) continue;
    helpersNs += Number(fs.readFileSync("/proc/self/task/" + tid + "/schedstat", "utf8").split(" ")[0]);
  }
  console.log(JSON.stringify({ helpersMs: helpersNs / 1e6, kept: keep.length }));`;

test("a process started with v8StartFlags() collects on its own thread: V8's helper threads stay idle", (t) => {
  if (process.platform !== "linux") return t.skip("reads /proc/self/task/*/schedstat");
  const helpersMs = (flags: string[]) => (JSON.parse(inNode([...flags, "--expose-gc"], HELPER_CPU)) as { helpersMs: number }).helpersMs;
  const withHelpers = helpersMs(v8StartFlags().filter((flag) => flag !== SINGLE_THREADED_GC_FLAG));
  const alone = helpersMs(v8StartFlags());
  assert.ok(withHelpers > 20, `without ${SINGLE_THREADED_GC_FLAG} the helpers marked: ${withHelpers.toFixed(1)} ms of their CPU`);
  assert.ok(alone < withHelpers / 4, `with it the helpers ran ${alone.toFixed(1)} ms, against ${withHelpers.toFixed(1)} ms without`);
});
