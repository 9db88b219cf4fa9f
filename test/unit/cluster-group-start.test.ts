// What a group's start leaves out: rank threads start without TensorFlow.js (loaded before the
// first cell that names `tf`) and without the TypeScript compiler; the kernel creates its chains'
// TypeScript programs while idle. Real thread ranks and a real compiler throughout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import type { CellCompiling } from "../../kernel/src/repl/cell-compiling";
import { CompilerThreads, WARM_WHEN_QUIET_MS } from "../../kernel/src/repl/compiler-threads";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";
import { CompileError } from "../../kernel/src/repl/errors";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import { cellNeedsTf } from "../../kernel/src/cluster/rank-side/rank-tf";
import { RecordingIO } from "./cluster-io";
import { distributedSessionFixture } from "./session-fixture";

const fixture = distributedSessionFixture({ timeline: false });

async function run(flags: string, body: string): Promise<ExecuteOutcome> {
  return fixture.session.runCell(body, 1, parseDistributedFlags(flags.split(" ").filter(Boolean)), new RecordingIO());
}

function resultJson(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

// What the rank's thread has loaded, read from its own module cache. The package names are built
// from pieces so that this cell's source does not name TensorFlow.js (which would load it).
const PROBE = `
const loaded = Object.keys(require("node:module")._cache);
const has = (...parts: string[]) => loaded.some((file) => file.includes(parts.join("")));
({ tfjs: has("@tensor", "flow/tfjs-core"), typescript: has("typescript-for", "-tslab/lib/typescript.js"), device: dist.device })`;

test("thread ranks start without TensorFlow.js or TypeScript; the first cell naming tf loads TensorFlow.js", async () => {
  const before = resultJson(await run("-n 2", PROBE)) as Array<{ tfjs: boolean; typescript: boolean; device: string }>;
  assert.deepEqual(before, [0, 1].map(() => ({ tfjs: false, typescript: false, device: "cpu:tfjs not loaded yet" })));
  assert.deepEqual(fixture.session.group?.ranks.map((rank) => rank.tfBackend), ["not loaded yet", "not loaded yet"]);

  assert.deepEqual(resultJson(await run("-n 2", "tf.tensor([1, 2]).sum().dataSync()[0]")), [3, 3]);
  const after = resultJson(await run("-n 2", PROBE)) as Array<{ tfjs: boolean; typescript: boolean; device: string }>;
  for (const rank of after) {
    assert.equal(rank.tfjs, true);
    assert.equal(rank.typescript, false);
    assert.match(rank.device, /^cpu:(wasm|cpu)/);
  }
  // The kernel learned each rank's backend from the result of the cell that loaded it.
  const backends = fixture.session.group?.ranks.map((rank) => rank.tfBackend) ?? [];
  assert.ok(backends.every((backend) => backend === "wasm" || backend === "cpu"), backends.join(", "));
  assert.deepEqual(fixture.session.group?.ranks.map((rank) => rank.device), after.map((rank) => rank.device));
});

test("a function declared in a tf cell keeps working in a later cell that does not name tf", async () => {
  resultJson(await run("-n 2", "const ones = (n: number) => tf.ones([n]).sum().dataSync()[0];"));
  assert.deepEqual(resultJson(await run("-n 2", "ones(3) + dist.rank")), [3, 4]);
});

test("a cell needs TensorFlow.js when it names tf or restore, or loads a module that is not Node's own", () => {
  const needs = ["tf.ones([1])", "await dist.restore('ckpt')", 'import { createTinyGpt } from "distlab/models";', 'const t = await import("distlab/techniques")', 'require( "./mine" )'];
  const needsNot = ["0", "await dist.allReduce(new Float32Array(4))", 'const fs = require("node:fs")', 'import * as os from "os"', "const tfx = 1"];
  assert.deepEqual(needs.filter((source) => !cellNeedsTf(source)), []);
  assert.deepEqual(needsNot.filter((source) => cellNeedsTf(source)), []);
});

test("a --tf-backend that cannot load still fails the group's start, naming the flag", { skip: hasTfjsNode() && "tfjs-node is installed" }, async () => {
  await assert.rejects(run("-n 2 --tf-backend tensorflow", "0"), /could not start: rank 0: --tf-backend tensorflow: the npm package @tensorflow\/tfjs-node/);
});

/**
 * Ticks of a 20 ms timer on this thread while `work` is awaited: a compiler that creates its
 * program on this thread lets none through until it is done (about a second of CPU here).
 */
async function ticksDuring(work: () => unknown): Promise<number> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return ticks;
}

test("the compiler threads create a chain's program off the kernel's thread, which keeps running meanwhile", async () => {
  const threads: CellCompiling = new CompilerThreads({ warmChains: [] });
  try {
    const chain = DeclarationChain.ranks();
    // The first compile creates the ranks chain's program (TensorFlow.js's types: seconds of CPU).
    const ticks = await ticksDuring(() => threads.compile("const n: number = dist.rank; n", chain));
    assert.ok(ticks >= 5, `this thread's timer fired ${ticks} times while the program was created`);
  } finally {
    threads.close();
  }
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(20);
  }
}

test("a chain's program after the first is created only once no cell has run for WARM_WHEN_QUIET_MS, never during a cell", async () => {
  const threads = new CompilerThreads({ warmChains: [DeclarationChain.ranks(), DeclarationChain.notebook()] });
  try {
    assert.deepEqual(threads.warmUp(), { created: [], creating: "ranks", waiting: ["notebook"] }, "the first chain's program is created from the start");
    // A cell runs while the first program is created and for a while after: it keeps the cores to itself.
    await threads.duringCell(async () => {
      await until(() => threads.warmUp().created.includes("ranks"), "the ranks chain's program created");
      await sleep(3 * WARM_WHEN_QUIET_MS);
      assert.deepEqual(threads.warmUp(), { created: ["ranks"], waiting: ["notebook"] }, "no program is created during a cell");
    });
    await sleep(WARM_WHEN_QUIET_MS / 2);
    assert.deepEqual(threads.warmUp(), { created: ["ranks"], waiting: ["notebook"] }, "nor in the first WARM_WHEN_QUIET_MS after it");
    await until(() => threads.warmUp().creating === "notebook" || threads.warmUp().created.includes("notebook"), "the notebook chain's program started once quiet", 4 * WARM_WHEN_QUIET_MS);
  } finally {
    threads.close();
  }
});

test("a request pending when the compiler threads close fails naming its chain, not hangs", async () => {
  const threads = new CompilerThreads({ warmChains: [] });
  // Still creating the ranks chain's program (about a second) when close() comes.
  const pending = threads.compile("0", DeclarationChain.ranks());
  threads.close();
  await assert.rejects(pending, /the ranks chain's compiler thread stopped \(the kernel closed its compiler\)/);
});

test("a compiler thread that dies fails its pending request naming the chain and why; the next request gets a new thread", async () => {
  // 16 MiB of heap cannot hold the ranks chain's program (TensorFlow.js's types): the thread runs out of memory.
  const threads = new CompilerThreads({ warmChains: [], threadHeapMb: 16 });
  try {
    await assert.rejects(threads.compile("0", DeclarationChain.ranks()), /the ranks chain's compiler thread stopped \(.*(out of memory|OUT_OF_MEMORY).*\); the next cell starts a new one/i);
    // The next request goes to a fresh thread (which, under the same cap, stops the same way) instead of a dead one.
    await assert.rejects(threads.compile("1", DeclarationChain.ranks()), /the ranks chain's compiler thread stopped \(.*(out of memory|OUT_OF_MEMORY).*\); the next cell starts a new one/i);
  } finally {
    threads.close();
  }
});

test("the compiler threads answer as the compiler on this thread does, errors and declarations included", async () => {
  const here = new CellCompiler();
  const threads = new CompilerThreads({ warmChains: [] });
  try {
    const cell = "const xs: number[] = [1, 2];\nconst total = xs.reduce((a, b) => a + b);\ntotal";
    for (const compiler of [here, threads] as CellCompiling[]) {
      const chain = DeclarationChain.notebook();
      chain.advance(await compiler.compile(cell, chain));
      await compiler.declareVariable(chain, "pulled", "Array<number>");
      const later = await compiler.compile("pulled.length + total", chain);
      assert.match(later.js, /pulled/);
      assert.match(chain.declarations, /pulled: Array<number>|pulled: number\[\]/);
      // A cell that does not type-check arrives as a CompileError with its position, from either.
      await assert.rejects(async () => compiler.compile("const s: string = total;", chain), (error: unknown) => {
        assert.ok(error instanceof CompileError, String(error));
        assert.deepEqual(error.diagnostics.map((d) => [d.line, d.column]), [[1, 7]]);
        assert.match(error.message, /Type 'number' is not assignable to type 'string'/);
        return true;
      });
      const completion = await compiler.complete("xs.redu", 7, chain);
      assert.ok(completion.candidates.includes("reduce"), completion.candidates.join(","));
      const info = await compiler.inspect("total", 2, chain);
      assert.match(JSON.stringify(info?.displayParts), /total/);
      await assert.rejects(async () => compiler.declareVariable(chain, "not a name"), /'not a name' is not a JavaScript identifier/);
    }
  } finally {
    here.close();
    threads.close();
  }
});

function hasTfjsNode(): boolean {
  try {
    require.resolve("@tensorflow/tfjs-node");
    return true;
  } catch {
    return false;
  }
}
