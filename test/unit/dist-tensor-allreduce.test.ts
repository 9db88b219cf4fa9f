// dist.allReduce(tensor) on the wasm backend in a thread world reads and writes the wasm heap by
// address, or goes through the rank's registered memory where that cannot run
// (kernel/src/cluster/rank-side/tensor-allreduce.ts): the right values, shape and dtype, the input
// untouched, no block taken from the result pool, and a loop of calls holding no memory.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
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

async function resultOf(flags: string, body: string): Promise<unknown> {
  const outcome = await session.runCell(body, 1, parseDistributedFlags(flags.split(" ")), new RecordingIO());
  assert.equal(outcome.status, "ok", JSON.stringify(outcome));
  return outcome.status === "ok" ? outcome.result?.data["application/json"] : undefined;
}

// 2 MiB tensors ([512, 1024] float32), above the path's 1 MiB floor; rank r holds r + 1 + i / 1e6 at i
const CELL = `
const shape = [512, 1024];
const make = () => tf.tidy(() => tf.range(0, 512 * 1024).div(1e6).add(dist.rank + 1).reshape(shape));
const t = make();
const before = t.dataSync().slice();
const summed = await dist.allReduce(t);
const mean = await dist.allReduce(t, { op: "mean" });
const s = summed.dataSync(), m = mean.dataSync(), x = t.dataSync();
let wrongSum = 0, wrongMean = 0, changed = 0;
for (let i = 0; i < s.length; i++) {
  const want = 3 + 2 * Math.fround(i / 1e6);
  if (Math.abs(s[i] - want) > 1e-4) wrongSum++;
  if (Math.abs(m[i] - want / 2) > 1e-4) wrongMean++;
  if (x[i] !== before[i]) changed++;
}
const heldBefore = tf.memory().numBytes;
for (let i = 0; i < 10; i++) (await dist.allReduce(t)).dispose();
const pool = (dist.comm as any).core.results.stats();
({ backend: tf.getBackend(), shape: summed.shape, dtype: summed.dtype, wrongSum, wrongMean, changed,
   heldGrowth: tf.memory().numBytes - heldBefore, poolBlocks: pool.blocks })`;

test("dist.allReduce(tensor) on wasm: sum and mean right, input kept, no pooled block, no memory held by a loop", async () => {
  const replies = (await resultOf("-n 2", CELL)) as Record<string, unknown>[];
  replies.forEach((r, rank) => {
    assert.equal(r.backend, "wasm", `rank ${rank}: this test is about the wasm backend`);
    assert.deepEqual([r.shape, r.dtype], [[512, 1024], "float32"], `rank ${rank}`);
    assert.deepEqual([r.wrongSum, r.wrongMean, r.changed], [0, 0, 0], `rank ${rank}: wrong sums, wrong means, changed inputs`);
    assert.equal(r.poolBlocks, 0, `rank ${rank}: the tensor calls took ${r.poolBlocks} blocks from the result pool (the generic path)`);
    assert.equal(r.heldGrowth, 0, `rank ${rank}: 10 calls whose results were disposed left ${r.heldGrowth} bytes of tensors`);
  });
});

test("under an emulated link (no direct path: the heap path steps aside) the tensor call is still right and holds no memory", async () => {
  const replies = (await resultOf("-n 2 --link bandwidth=100Gbit,latency=1us", CELL)) as Record<string, unknown>[];
  replies.forEach((r, rank) => {
    assert.deepEqual([r.wrongSum, r.wrongMean, r.changed], [0, 0, 0], `rank ${rank}: wrong sums, wrong means, changed inputs`);
    assert.equal(r.heldGrowth, 0, `rank ${rank}: 10 calls whose results were disposed left ${r.heldGrowth} bytes of tensors`);
  });
});
