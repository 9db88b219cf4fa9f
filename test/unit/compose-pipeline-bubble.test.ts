// TP inside pipeline stages runs the 1F1B schedule: a real 4-rank
// %%distributed cell trains the tiny GPT as TP 2 inside PP 2 with 4
// micro-batches, and the bubble is measured from its timeline's pass spans
// (args.stage), as notebook 11 measures PipelineParallel's. One micro-batch at
// a time (forward through every stage, then backward) idles (p-1)/p = 1/2 of
// each stage's window; 1F1B idles (p-1)/(m+p-1) = 1/5. Each pass holds an
// emulated device time (compose's deviceMs, a wait using no CPU) so the
// schedule, not the shared CPU, sets the figure (the tiny model's real compute,
// stretched by whatever else runs on the machine, still adds some idle).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { measurePipelineBubble } from "../../kernel/src/techniques";
import { RecordingIO } from "./cluster-io";
import { distributedSessionFixture } from "./session-fixture";

const fixture = distributedSessionFixture();

const P = 2;
const M = 4;
const CELL = `
import { compose } from "distlab/techniques";
import { createTinyGpt } from "distlab/models";
const tokens = tf.tensor2d(Array.from({ length: 8 * 8 }, (_, i) => (i * 7 + 3) % 13), [8, 8], "int32");
const labels = tf.tensor2d(Array.from({ length: 8 * 8 }, (_, i) => (i * 5 + 1) % 13), [8, 8], "int32");
const plan = compose(createTinyGpt({ vocabSize: 13, blockSize: 8, nEmbd: 16, nHead: 4, nLayer: 2, seed: 1 }), dist, { dp: 1, tp: 2, pp: ${P} },
  { schedule: "1f1b", microBatches: ${M}, deviceMs: { F: 150, B: 300, W: 0 } });
for (let step = 0; step < 3; step++) await plan.step({ x: tokens, y: labels });
plan.dispose();
dist.rank`;

test("TP 2 inside PP 2 runs 1F1B: the bubble measured from the timeline is below one-micro-batch-at-a-time's (p-1)/p and near (p-1)/(m+p-1)", async () => {
  const io = new RecordingIO();
  const outcome = await fixture.session.runCell(CELL, 1, parseDistributedFlags(["-n", "4"]), io);
  assert.equal(outcome.status, "ok", JSON.stringify(outcome) + io.streams.map((s) => s.text).join(""));
  const spans = fixture.observer.last!.spans;
  const oneAtATime = (P - 1) / P;
  const oneForwardOneBackward = (P - 1) / (M + P - 1);
  // Steps 1 and 2 (step 0 warms up), per tp coordinate: ranks 0 and 2 are a pipeline, ranks 1 and 3 another.
  for (const [tp, step] of [[0, 1], [0, 2], [1, 1], [1, 2]] as const) {
    const passes = spans.filter((s) => s.args?.step === step && s.args?.tp === tp && typeof s.args?.stage === "number");
    assert.equal(passes.length, P * 2 * M, `tp ${tp}: ${passes.length} pass spans in step ${step}`);
    // Stage 0's order is the schedule's: F0 F1 B0 F2 B1 F3 B2 B3 (1F1B, one warm-up forward).
    const order = passes.filter((s) => s.args?.stage === 0).sort((a, b) => a.ts - b.ts).map((s) => `${s.args?.pass === "F" ? "F" : "B"}${s.args?.microbatch}`);
    assert.deepEqual(order, ["F0", "F1", "B0", "F2", "B1", "F3", "B2", "B3"], `tp ${tp}: stage 0 ran ${order.join(" ")}`);
    const { idleFraction, stages } = measurePipelineBubble(passes);
    console.log(`tp ${tp}, step ${step}: measured bubble ${idleFraction.toFixed(3)} (1F1B formula ${oneForwardOneBackward.toFixed(3)}, one at a time ${oneAtATime.toFixed(3)}); stages ${JSON.stringify(stages.map((s) => ({ stage: s.stage, busyMs: Math.round(s.busyUs / 1000), idleMs: Math.round(s.idleUs / 1000) })))}`);
    assert.ok(idleFraction < oneAtATime - 0.15, `tp ${tp}: bubble ${idleFraction.toFixed(3)} is not below one micro-batch at a time's ${oneAtATime}`);
    assert.ok(Math.abs(idleFraction - oneForwardOneBackward) < 0.06, `tp ${tp}: bubble ${idleFraction.toFixed(3)}, 1F1B's (p-1)/(m+p-1) = ${oneForwardOneBackward.toFixed(3)}`);
  }
});
