// What a group's start leaves out: rank threads start without TensorFlow.js (loaded before the
// first cell that names `tf`) and without the TypeScript compiler; the kernel creates its chains'
// TypeScript programs while idle. Real thread ranks and a real compiler throughout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";
import { warmUpWhenIdle } from "../../kernel/src/repl/compiler-warm-up";
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

test("the warm-up creates a chain's TypeScript program only once the kernel has been idle long enough", async () => {
  const warmed = new CellCompiler();
  let idle = false;
  const chain = DeclarationChain.ranks();
  // Busy (0 ms idle) until the test says otherwise, then idle for long enough.
  const stop = warmUpWhenIdle(warmed, [chain], () => (idle ? 60_000 : 0), 10);
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(warmed.hasProgram(chain), false, "warmed up while the kernel was busy");
    idle = true;
    for (let waited = 0; !warmed.hasProgram(chain) && waited < 120_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(warmed.hasProgram(chain), true, "not warmed up once the kernel was idle");
    assert.equal(warmed.hasProgram(DeclarationChain.notebook()), false, "warmed a chain it was not given");
  } finally {
    stop();
    warmed.close();
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
