// Activation checkpointing on the linear chain and the tiny GPT: the layer inputs held, counted
// from the kept-tensor registry and from the backend's own tf.memory(); the recompute, read back
// from the spans a real rank recorder timed; gradients against plain backpropagation and the
// whole-model tape; bad segment sizes.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { seededRandom, tokenBatch } from "../../kernel/src/data";
import { createLinearChain, createTinyGpt } from "../../kernel/src/models";
import { ActivationCheckpointing, checkpointSegments, localGradients, peakHeldFormula, recomputedLayersFormula, type StagedModel } from "../../kernel/src/techniques";
import { createRankRecorder, type SpanBatch } from "../../kernel/src/trace";

const N = 16;
const WIDTH = 32;
const ROWS = 8;
const ACTIVATION_BYTES = 4 * ROWS * WIDTH; // one layer input [rows, width] float32

function chainBatch(seed: number) {
  const random = seededRandom(seed);
  const values = () => Float32Array.from({ length: ROWS * WIDTH }, () => random() * 2 - 1);
  return { x: tf.tensor2d(values(), [ROWS, WIDTH]), y: tf.tensor2d(values(), [ROWS, WIDTH]) };
}

/** Largest |a - b| over all gradients, over max(1, largest |b|). */
function relativeDifference(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let difference = 0, scale = 0;
  a.forEach((g, p) => g.forEach((v, i) => {
    difference = Math.max(difference, Math.abs(v - b[p]![i]!));
    scale = Math.max(scale, Math.abs(b[p]![i]!));
  }));
  return difference / Math.max(1, scale);
}

test("the segments cut n layers every s, the last one shorter", () => {
  assert.deepEqual(checkpointSegments(16, 4), [[0, 4], [4, 8], [8, 12], [12, 16]]);
  assert.deepEqual(checkpointSegments(7, 3), [[0, 3], [3, 6], [6, 7]]);
  assert.equal(peakHeldFormula(16, 4), 7); // n/s + s - 1 = 2 sqrt(n) - 1
  assert.equal(peakHeldFormula(16, 1), 16); // plain backpropagation keeps every input
  assert.equal(peakHeldFormula(16, 16), 16); // one segment: everything recomputed at once
  assert.equal(recomputedLayersFormula(16, 4), 12);
});

test("at s = sqrt(n) the layer inputs held fall from n to 2 sqrt(n) - 1, counted in the registry and by the backend", async () => {
  const chain = createLinearChain({ width: WIDTH, layers: N, seed: 3 });
  const batch = chainBatch(1);
  const tensorsBefore = tf.memory().numTensors;
  const plain = await new ActivationCheckpointing(chain, { segmentSize: 1 }).gradients(batch);
  const checkpointed = await new ActivationCheckpointing(chain).gradients(batch);
  assert.equal(tf.memory().numTensors, tensorsBefore, "a step leaked tensors");

  assert.equal(plain.atBackwardStart.tensors, N);
  assert.equal(plain.peak.tensors, N);
  assert.equal(plain.peak.bytes, N * ACTIVATION_BYTES);
  assert.equal(checkpointed.atBackwardStart.tensors, 4, "k = n / s checkpoints when backward starts");
  assert.equal(checkpointed.peak.tensors, 2 * Math.sqrt(N) - 1);
  assert.equal(checkpointed.peak.bytes, (2 * Math.sqrt(N) - 1) * ACTIVATION_BYTES);
  // The backend's own count: the kept inputs but the model input (the batch's), plus dy in backward.
  assert.equal(plain.peak.backendBytes, (N - 1) * ACTIVATION_BYTES);
  assert.equal(checkpointed.peak.backendBytes, (2 * Math.sqrt(N) - 1 - 1 + 1) * ACTIVATION_BYTES);
  tf.dispose([batch.x, batch.y]);
});

test("every segment size holds what the formula says and gives bitwise the gradients of plain backpropagation", async () => {
  const chain = createLinearChain({ width: WIDTH, layers: N, seed: 4 });
  const batch = chainBatch(2);
  const plain = await new ActivationCheckpointing(chain, { segmentSize: 1 }).gradients(batch);
  const whole = await localGradients(chain, batch);
  assert.ok(relativeDifference(plain.grads, whole.grads) <= 1e-5, `plain layer-by-layer backward differs from the whole tape by ${relativeDifference(plain.grads, whole.grads)}`);
  assert.ok(Math.abs(plain.loss - whole.loss) <= 1e-6 * Math.max(1, whole.loss));
  for (const s of [2, 3, 4, 5, 8, 16]) {
    const run = await new ActivationCheckpointing(chain, { segmentSize: s }).gradients(batch);
    assert.equal(run.peak.tensors, peakHeldFormula(N, s), `s = ${s}: held ${run.peak.tensors} layer inputs at the peak`);
    assert.equal(run.atBackwardStart.tensors, Math.ceil(N / s), `s = ${s}: checkpoints when backward starts`);
    assert.equal(run.loss, plain.loss);
    run.grads.forEach((g, p) => assert.deepEqual(g, plain.grads[p], `s = ${s}: gradient of parameter ${p} is not bitwise plain backpropagation's`));
  }
  tf.dispose([batch.x, batch.y]);
});

test("the tiny GPT's blocks checkpoint through tf.grads with the whole tape's gradients", async () => {
  const gpt = createTinyGpt({ vocabSize: 12, blockSize: 8, nEmbd: 16, nHead: 2, nLayer: 4, seed: 1 });
  const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 7 + (i >> 3)) % 12);
  const batch = tokenBatch(tokens, 4, 8, seededRandom(9));
  const whole = await localGradients(gpt as StagedModel<typeof batch>, batch);
  const tensorsBefore = tf.memory().numTensors;
  const run = await new ActivationCheckpointing(gpt).gradients(batch); // 6 stages, s = 2
  assert.equal(tf.memory().numTensors, tensorsBefore, "a step leaked tensors");
  assert.equal(run.peak.tensors, peakHeldFormula(6, 2));
  const difference = relativeDifference(run.grads, whole.grads);
  assert.ok(difference <= 1e-5, `checkpointed tiny GPT gradients differ from the whole tape's by ${difference} (relative)`);
  tf.dispose([batch.x, batch.y]);
});

test("the spans a rank recorder timed: forward, recompute and backward per segment and per layer pass, n - k recompute passes a step", async () => {
  const chain = createLinearChain({ width: 128, layers: N, seed: 5 });
  const random = seededRandom(3);
  const values = () => Float32Array.from({ length: 64 * 128 }, () => random() * 2 - 1);
  const batch = { x: tf.tensor2d(values(), [64, 128]), y: tf.tensor2d(values(), [64, 128]) };
  const batches: SpanBatch[] = [];
  const recorder = createRankRecorder({ rank: 0, enabled: true, post: (b) => batches.push(b), flushIntervalMs: 1e6 });
  const technique = new ActivationCheckpointing(chain, {}, recorder);
  const k = technique.segments.length;
  const STEPS = 5;
  await technique.gradients(batch); // warms the kernels up
  recorder.flush();
  batches.length = 0;
  for (let step = 0; step < STEPS; step++) await technique.gradients(batch);
  recorder.flush();
  const spans = batches.flatMap((b) => b.spans);
  const named = (pattern: RegExp) => spans.filter((s) => pattern.test(s.name));
  assert.equal(named(/^forward$/).length, STEPS);
  assert.equal(named(/^recompute segment \d+$/).length, STEPS * k);
  assert.equal(named(/^backward segment \d+$/).length, STEPS * k);
  assert.equal(named(/^forward layer \d+$/).length, STEPS * N);
  assert.equal(named(/^recompute layer \d+$/).length, STEPS * recomputedLayersFormula(N, 4), "n - k layer forwards run again a step");
  assert.equal(named(/^backward layer \d+$/).length, STEPS * N);
  // Each segment's last layer is never recomputed: its output is the next checkpoint.
  assert.deepEqual([...new Set(named(/^recompute layer \d+$/).map((s) => Number(s.name.split(" ")[2])))].sort((a, b) => a - b), [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14]);
  // The cost of those passes against the forward's is notebook 13's check (wasm, sub-millisecond
  // passes, medians over hundreds); here, on the cpu backend's slower passes under a shared machine's
  // load, it is printed only.
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const pass = (pattern: RegExp) => median(named(pattern).map((s) => s.dur));
  const extra = (recomputedLayersFormula(N, 4) * pass(/^recompute layer \d+$/)) / (N * pass(/^forward layer \d+$/));
  console.log(`median layer pass: forward ${pass(/^forward layer/)} us, recompute ${pass(/^recompute layer/)} us, backward ${pass(/^backward layer/)} us; recompute / forward ${extra.toFixed(2)}, formula ${recomputedLayersFormula(N, 4) / N}`);
  tf.dispose([batch.x, batch.y]);
});

test("a segment size outside [1, n] or not an integer fails naming the value and the model's layers", () => {
  const chain = createLinearChain({ width: 4, layers: 6 });
  for (const [bad, shown] of [[0, "got 0"], [7, "got 7"], [2.5, "got 2.5"], [-1, "got -1"], ["half", 'got "half"']] as const) {
    assert.throws(() => new ActivationCheckpointing(chain, { segmentSize: bad as number }), (e: Error) => {
      assert.ok(e instanceof RangeError, `${bad}: ${e}`);
      assert.match(e.message, /activationCheckpointing\.segmentSize/);
      assert.ok(e.message.includes(shown) && e.message.includes("[1, 6]") && e.message.includes("6 layers"), e.message);
      return true;
    });
  }
  assert.throws(() => new ActivationCheckpointing(chain, { segments: 2 } as object), /activationCheckpointing\.segments is not an option/);
});
