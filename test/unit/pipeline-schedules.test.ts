// The pipeline schedules on paper: every pass of every micro-batch exactly
// once per chunk, in an order the stages can run, and, with fixed pass times
// and free messages, the bubble each schedule's paper gives. Bad shapes fail
// before anything runs, naming the values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildSchedule, simulateSchedule, validatePipelineShape, PipelineParallel, type PipelineScheduleName } from "../../kernel/src/techniques";
import { createLinearChain, createTinyGpt } from "../../kernel/src/models";

const close = (got: number, want: number, rel = 1e-9) => Math.abs(got - want) <= rel * Math.abs(want);

test("each schedule runs every pass of every micro-batch once, on the stage that holds the chunk", () => {
  const cases: [PipelineScheduleName, number, number, number][] = [["gpipe", 4, 6, 1], ["1f1b", 4, 8, 1], ["interleaved", 4, 8, 2], ["interleaved", 2, 4, 3], ["zb-h1", 4, 5, 1]];
  for (const [name, p, m, v] of cases) {
    const schedule = buildSchedule(name, p, m, v);
    const seen = new Map<string, number>();
    schedule.forEach((ops, r) => {
      for (const op of ops) {
        assert.equal(op.chunk % p, r, `${name}: chunk ${op.chunk} ran on stage ${r}`);
        const passes = op.kind === "BW" ? ["B", "W"] : [op.kind];
        for (const pass of passes) {
          const key = `${pass}:${op.chunk}:${op.microBatch}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
        }
      }
    });
    assert.equal(seen.size, 3 * p * v * m, `${name}: distinct passes`);
    for (const [key, n] of seen) assert.equal(n, 1, `${name}: ${key} ran ${n} times`);
    simulateSchedule(schedule, { F: 1, B: 1, W: 1 }, v); // throws if the order deadlocks
  }
});

test("on paper: GPipe idles (p-1)/(m+p-1), 1F1B (p-1)/m of ideal, interleaved (p-1)/(v m), ZB-H1 a third of 1F1B", () => {
  const p = 4;
  for (const m of [4, 8, 16]) {
    const gpipe = simulateSchedule(buildSchedule("gpipe", p, m), { F: 1, B: 2, W: 0 });
    assert.ok(close(gpipe.idleFraction, (p - 1) / (m + p - 1)), `gpipe m=${m}: ${gpipe.idleFraction}`);
    const oneF = simulateSchedule(buildSchedule("1f1b", p, m), { F: 1, B: 1, W: 1 });
    assert.ok(close(oneF.bubbleOverIdeal, (p - 1) / m), `1f1b m=${m}: ${oneF.bubbleOverIdeal}`);
    for (const v of [2, 4]) {
      const inter = simulateSchedule(buildSchedule("interleaved", p, m, v), { F: 1, B: 1, W: 1 }, v);
      assert.ok(close(inter.bubbleOverIdeal, (p - 1) / (v * m)), `interleaved v=${v} m=${m}: ${inter.bubbleOverIdeal}`);
    }
    const zb = simulateSchedule(buildSchedule("zb-h1", p, m), { F: 1, B: 1, W: 1 });
    assert.ok(close(zb.bubbleOverIdeal, oneF.bubbleOverIdeal / 3), `zb-h1 m=${m}: ${zb.bubbleOverIdeal} vs 1f1b ${oneF.bubbleOverIdeal}`);
  }
});

test("bad shapes fail before anything runs, naming the values", () => {
  assert.throws(() => validatePipelineShape("gpipe", 4, 8, 1, 3), /4 pipeline stages need at least 4 layers, but the model has 3/);
  assert.throws(() => validatePipelineShape("interleaved", 2, 4, 3, 5), /2 pipeline stages x 3 chunks = 6 model chunks need at least 6 layers, but the model has 5/);
  assert.throws(() => validatePipelineShape("1f1b", 4, 3, 1, 8), /pipeline.microBatches is 3, but the 1f1b schedule on 4 stages needs at least 4/);
  assert.throws(() => validatePipelineShape("zb-h1", 4, 2, 1, 8), /pipeline.microBatches is 2, but the zb-h1 schedule on 4 stages needs at least 4/);
  assert.throws(() => validatePipelineShape("interleaved", 4, 6, 2, 8), /pipeline.microBatches is 6, but the interleaved schedule on 4 stages needs a multiple of 4/);
  assert.throws(() => validatePipelineShape("1f1b", 2, 4, 2, 8), /pipeline.chunks is 2, but only the interleaved schedule/);
  assert.doesNotThrow(() => validatePipelineShape("gpipe", 4, 1, 1, 4));
  // Through the class: a 3-layer model (embedding, 1 block, head) on 4 ranks, before any message.
  const fakeDist = { comm: { rank: 0, size: 4, isend: async () => {}, irecv: async (x: Float32Array) => x } };
  const gpt = createTinyGpt({ vocabSize: 5, nLayer: 1 });
  assert.throws(() => new PipelineParallel(gpt, fakeDist, { schedule: "gpipe" }), /4 pipeline stages need at least 4 layers, but the model has 3/);
  assert.throws(() => new PipelineParallel(createLinearChain({ layers: 8 }), fakeDist, { schedule: "1f1b", microBatches: 2 }), /microBatches is 2.*needs at least 4/);
  assert.throws(() => new PipelineParallel(createLinearChain({ layers: 8 }), fakeDist, { schedule: "pipedream" as never }), /pipeline.schedule must be one of/);
});
