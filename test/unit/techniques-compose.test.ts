// compose() of the tiny GPT on real worlds of thread ranks: DP x TP, DP x PP
// and TP inside PP on 4 ranks, all three on 8. Every rank's gradients (after
// the DP average) and the loss against the whole global batch on one rank,
// over a few SGD steps; the rank -> (dp, pp, tp) layout; the collectives the
// transport counted; and bad input failing before anything runs.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { ThreadWorld } from "./comm-harness";
import { createTinyGpt } from "../../kernel/src/models";
import { COMPOSE_DEFAULTS, meshCoordinates, meshDimensionOf, validateComposeOptions, validateComposition } from "../../kernel/src/techniques";

const worlds: ThreadWorld[] = [];
after(async () => {
  for (const w of worlds) await w.close();
});

interface Reply {
  peakStaged: number;
  coords: { dp: number; pp: number; tp: number };
  groups: { dp: string; pp: string; tp: string };
  gradDifference: number;
  gradScale: number;
  losses: [number, number][];
  ops: Record<string, number>;
}
const SHAPE = { batch: 8, seq: 8, nEmbd: 16, nHead: 4, nLayer: 2, steps: 3 };
let shared: ThreadWorld | undefined;
const run = async (mesh: object, options: object = {}) => {
  shared ??= new ThreadWorld(4, { workerFile: path.join(__dirname, "compose-worker.ts") });
  if (!worlds.includes(shared)) worlds.push(shared);
  return (await shared.values("compose", Array(4).fill({ ...SHAPE, mesh, options }))) as Reply[];
};

/** float32 tolerance: gradients are sums of a few hundred products of O(1) values; reordering them moves the last bits. */
const close = (r: Reply, rank: number) => {
  assert.ok(r.gradDifference < 1e-5 * Math.max(1, r.gradScale), `rank ${rank}: a gradient differs from one rank's by ${r.gradDifference} (largest ${r.gradScale})`);
  for (const [step, [reference, composed]] of r.losses.entries()) assert.ok(Math.abs(reference - composed) < 1e-5, `rank ${rank} step ${step}: loss ${composed}, one rank ${reference}`);
};

test("DP 2 x TP 2: gradients and loss equal one rank's on the global batch for 3 steps; TP allReduces in tp groups, DP in dp groups", async () => {
  const replies = await run({ dp: 2, tp: 2, pp: 1 });
  replies.forEach((r, rank) => {
    close(r, rank);
    assert.deepEqual(r.coords, meshCoordinates(rank, { dp: 2, tp: 2, pp: 1 }));
    assert.deepEqual(r.coords, { dp: rank >> 1, pp: 0, tp: rank & 1 }, `rank ${rank}: TP innermost, DP outermost`);
    assert.equal(meshDimensionOf(r.groups.tp), "tp");
    assert.equal(meshDimensionOf(r.groups.dp), "dp");
    // 2 layers x (2 forward + 2 backward) TP allReduces and 1 DP allReduce, a step.
    assert.deepEqual(r.ops, { allReduce: SHAPE.steps * (4 * SHAPE.nLayer + 1) }, `rank ${rank}: ${JSON.stringify(r.ops)}`);
  });
  assert.notEqual(replies[0]!.groups.tp, replies[2]!.groups.tp, "ranks 0 and 2 are in different tp groups");
  assert.equal(replies[0]!.groups.tp, replies[1]!.groups.tp, "ranks 0 and 1 share a tp group");
  assert.equal(replies[0]!.groups.dp, replies[2]!.groups.dp, "ranks 0 and 2 share a dp group");
});

test("DP 2 x PP 2 (1F1B, 2 micro-batches): gradients and loss equal one rank's for 3 steps; activations point to point, DP allReduce", async () => {
  const replies = await run({ dp: 2, tp: 1, pp: 2 }, { microBatches: 2 });
  replies.forEach((r, rank) => {
    close(r, rank);
    assert.deepEqual(r.coords, { dp: rank >> 1, pp: rank & 1, tp: 0 });
    // a step: 2 micro-batches' activations (stage 0 sends) or gradients (stage 1 sends), 1 pp loss allReduce, 1 dp allReduce
    assert.equal(r.ops.allReduce, 2 * SHAPE.steps, `rank ${rank}: ${JSON.stringify(r.ops)}`);
    assert.equal(r.ops.send, 2 * SHAPE.steps, `rank ${rank}: ${JSON.stringify(r.ops)}`);
    assert.equal(r.ops.recv, 2 * SHAPE.steps, `rank ${rank}: ${JSON.stringify(r.ops)}`);
  });
  assert.equal(replies[0]!.groups.pp, replies[1]!.groups.pp, "ranks 0 and 1 form a pipeline");
  assert.equal(meshDimensionOf(replies[0]!.groups.pp), "pp");
});

test("TP 2 inside PP 2 (1F1B, 2 micro-batches): gradients and loss equal one rank's for 3 steps; TP allReduces, stage messages", async () => {
  const replies = await run({ dp: 1, tp: 2, pp: 2 }, { microBatches: 2 });
  replies.forEach((r, rank) => {
    close(r, rank);
    // 1F1B: stage r holds p - r micro-batches' tapes at its peak (stage 0 runs F0 F1 before B0), counted from the live tapes
    assert.equal(r.peakStaged, 2 - (rank >> 1), `rank ${rank} (stage ${rank >> 1}): peak ${r.peakStaged} micro-batches' tapes held`);
    assert.deepEqual(r.coords, { dp: 0, pp: rank >> 1, tp: rank & 1 }, `rank ${rank}: TP innermost, then PP`);
    assert.equal(meshDimensionOf(r.groups.tp), "tp");
    // a step: each stage's one block, 2 micro-batches x (2 forward + 2 backward) TP allReduces, 1 loss allReduce;
    // a message per micro-batch each way (stage 0 sends activations, receives gradients)
    assert.deepEqual(r.ops, { allReduce: SHAPE.steps * (2 * 4 + 1), recv: 2 * SHAPE.steps, send: 2 * SHAPE.steps }, `rank ${rank}: ${JSON.stringify(r.ops)}`);
  });
  assert.equal(replies[0]!.groups.pp, replies[2]!.groups.pp, "ranks 0 and 2 form a pipeline");
  assert.equal(replies[0]!.groups.tp, replies[1]!.groups.tp, "ranks 0 and 1 share stage 0's tp group");
});

test("TP 2 inside PP 2, 1F1B with 4 micro-batches and GPipe with 4: gradients equal one rank's; peak tapes p - r and m", async () => {
  for (const [schedule, peak] of [["1f1b", (stage: number) => 2 - stage], ["gpipe", () => 4]] as const) {
    const replies = await run({ dp: 1, tp: 2, pp: 2 }, { microBatches: 4, schedule });
    replies.forEach((r, rank) => {
      close(r, rank);
      assert.equal(r.peakStaged, peak(rank >> 1), `${schedule}, rank ${rank}: peak ${r.peakStaged} micro-batches' tapes held`);
    });
  }
});

test("DP 2 x TP 2 x PP 2 on 8 ranks: gradients and loss equal one rank's for 2 steps; rank -> (dp, pp, tp) as documented", async () => {
  const eight = new ThreadWorld(8, { workerFile: path.join(__dirname, "compose-worker.ts") });
  worlds.push(eight);
  const replies = (await eight.values("compose", Array(8).fill({ ...SHAPE, steps: 2, mesh: { dp: 2, tp: 2, pp: 2 }, options: { microBatches: 2 } }))) as Reply[];
  replies.forEach((r, rank) => {
    close(r, rank);
    assert.deepEqual(r.coords, { dp: rank >> 2, pp: (rank >> 1) & 1, tp: rank & 1 }, `rank ${rank}: rank = (dp x 2 + pp) x 2 + tp`);
    // a step: 2 micro-batches x 4 TP allReduces, the loss on pp, the gradients on dp; a message per micro-batch each way
    assert.deepEqual(r.ops, { allReduce: 2 * (2 * 4 + 2), recv: 2 * 2, send: 2 * 2 }, `rank ${rank}: ${JSON.stringify(r.ops)}`);
  });
  assert.equal(replies[0]!.groups.dp, replies[4]!.groups.dp, "ranks 0 and 4 average their gradients");
  assert.equal(replies[1]!.groups.pp, replies[3]!.groups.pp, "ranks 1 and 3 form a pipeline");
});

test("bad input fails before anything runs, naming the values", () => {
  const model = createTinyGpt({ vocabSize: 13, blockSize: 8, nEmbd: 16, nHead: 4, nLayer: 2, seed: 1 });
  const o = COMPOSE_DEFAULTS;
  assert.throws(() => validateComposition(model, { dp: 2, tp: 2, pp: 1 }, 8, o), /mesh dp=2 x tp=2 x pp=1 = 4, but the world has 8 ranks/);
  assert.throws(() => validateComposition(model, { dp: 1, tp: 1, pp: 8 }, 8, o), /8 pipeline stages \(mesh.pp\) need at least 8 layers, but the model has 4 \(embedding, tinyGpt.nLayer = 2 blocks, head\)/);
  assert.throws(() => validateComposition(model, { dp: 2, tp: 1, pp: 4 }, 8, { ...o, microBatches: 2 }), /pipeline.microBatches is 2, but the 1f1b schedule on 4 stages needs at least 4/);
  const odd = createTinyGpt({ vocabSize: 13, blockSize: 8, nEmbd: 18, nHead: 3, nLayer: 2, seed: 1 });
  assert.throws(() => validateComposition(odd, { dp: 2, tp: 4, pp: 1 }, 8, o), /hidden size tinyGpt.nEmbd \(18\) does not divide by the tensor-parallel degree \(4\); the head count tinyGpt.nHead \(3\)/);
  assert.throws(() => validateComposition(model, { dp: 0, tp: 2, pp: 2 } as never, 0, o), /compose: mesh.dp must be/);
  assert.throws(() => validateComposition(model, { dp: 2, tp: 2, pq: 2 } as never, 8, o), /compose mesh.pq is not an option/);
  assert.throws(() => validateComposeOptions({ schedule: "zigzag" } as never), /compose.schedule/);
  assert.throws(() => validateComposition(model, { dp: 2, tp: 2, pp: 2 }, 8, { ...o, schedule: "zb-h1" }), /schedule zb-h1 with mesh.tp = 2 inside mesh.pp = 2 stages is not built; tensor parallelism inside pipeline stages runs 1f1b or gpipe/);
  assert.throws(() => validateComposition(model, { dp: 1, tp: 2, pp: 4 }, 8, { ...o, microBatches: 2 }), /pipeline.microBatches is 2, but the 1f1b schedule on 4 stages needs at least 4/);
  assert.doesNotThrow(() => validateComposition(model, { dp: 2, tp: 2, pp: 1 }, 4, o));
});
