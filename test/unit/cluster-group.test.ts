import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { parseDistributedFlags, type DistributedOptions } from "../../kernel/src/magics/distributed-spec";
import type { ExecuteOutcome } from "../../kernel/src/protocol/backend";
import { RecordingIO } from "./cluster-io";

let compiler: CellCompiler;
let session: DistributedSession;

before(() => {
  compiler = new CellCompiler();
  session = new DistributedSession(compiler);
});
after(async () => {
  await session.stop();
  compiler.close();
});

async function run(flags: string, body: string, io = new RecordingIO()): Promise<{ outcome: ExecuteOutcome; io: RecordingIO }> {
  const options: DistributedOptions = parseDistributedFlags(flags.split(" ").filter(Boolean));
  const outcome = await session.runCell(body, 1, options, io);
  return { outcome, io };
}

function resultJson(outcome: ExecuteOutcome): unknown {
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

test("each rank keeps its declarations between cells; the result is indexed by rank", async () => {
  const first = await run("-n 3", "let x = dist.rank * 10;\nconsole.log(`x is ${x}`);\nx");
  assert.deepEqual(resultJson(first.outcome), [0, 10, 20]);
  for (const rank of [0, 1, 2]) assert.match(first.io.text(), new RegExp(`^\\[rank ${rank}\\] x is ${rank * 10}$`, "m"));
  const second = await run("-n 3", "x + dist.size");
  assert.deepEqual(resultJson(second.outcome), [3, 13, 23]);
});

test("allReduce sums typed arrays and tensors, keeping type and shape", async () => {
  const { outcome } = await run(
    "-n 3",
    "const a = await dist.allReduce(new Float32Array([dist.rank, 1]));\n" +
      "const t = await dist.allReduce(tf.ones([2, 2]), { op: 'sum' });\n" +
      "[a instanceof Float32Array, Array.from(a), t.shape, t.arraySync()]",
  );
  const expected = [true, [3, 3], [2, 2], [[3, 3], [3, 3]]];
  assert.deepEqual(resultJson(outcome), [expected, expected, expected]);
});

test("functions declared before a failed cell still reach their peers after the world is rebuilt", async () => {
  await run("-n 2", "async function total(v: number) { return (await dist.allReduce(new Float64Array([v])))[0]; }\nawait total(1)");
  const failed = await run("-n 2", "if (dist.rank === 0) {\n  throw new Error('fail once');\n}\nawait dist.barrier();");
  assert.equal(failed.outcome.status, "error");
  const after = await run("-n 2", "await total(dist.rank + 1)");
  assert.deepEqual(resultJson(after.outcome), [3, 3]);
});

test("a throwing rank is named and the others are cancelled", async () => {
  const { outcome } = await run("-n 3", "if (dist.rank === 1) {\n  throw new TypeError('boom');\n}\nawait dist.barrier();\n1");
  assert.equal(outcome.status, "error");
  if (outcome.status !== "error") return;
  assert.equal(outcome.ename, "TypeError");
  assert.match(outcome.evalue, /^rank 1: TypeError: boom/);
  assert.ok(outcome.traceback.some((line) => /cancelled because rank 1 failed: ranks 0 and 2/.test(line)), outcome.traceback.join("\n"));
  // The throw is on body line 2; the %%distributed line above it makes that cell line 3.
  assert.ok(outcome.traceback.some((line) => /<cell 1>:3:\d+/.test(line)), outcome.traceback.join("\n"));
});

test("%dist-style variables: push then pull round-trips through every rank", async () => {
  const { outcome } = await run("-n 3", "const shard = dist.shard([1, 2, 3, 4, 5, 6, 7]);\nshard");
  assert.deepEqual(resultJson(outcome), [[1, 2, 3], [4, 5], [6, 7]]);
});

test("a rank that never joins a collective ends the cell within the timeout, naming it", async () => {
  const started = Date.now();
  const { outcome } = await run("-n 3 --timeout 2", "if (dist.rank !== 2) await dist.barrier();\ndist.rank");
  const elapsed = Date.now() - started;
  assert.equal(outcome.status, "error");
  if (outcome.status !== "error") return;
  assert.match(outcome.evalue, /waited .* for rank 2/);
  assert.ok(elapsed < 4000, `took ${elapsed} ms`);
});

test("an infinite synchronous loop is interrupted, its threads respawned, and the user told", async () => {
  await run("-n 2", "let kept = 42;");
  const io = new RecordingIO();
  setTimeout(() => io.interrupt(), 300);
  const started = Date.now();
  const { outcome } = await run("-n 2", "while (true) {}", io);
  assert.equal(outcome.status, "error");
  if (outcome.status !== "error") return;
  assert.equal(outcome.ename, "InterruptedError");
  assert.match(outcome.evalue, /state lost on ranks 0 and 1/);
  assert.ok(Date.now() - started < 5000);
  const after = await run("-n 2", "dist.rank + 100");
  assert.deepEqual(resultJson(after.outcome), [100, 101]);
});
