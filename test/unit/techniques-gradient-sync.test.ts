import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { datasetBatch, linearRegression, seededRandom, splitBatch, tokenBatches } from "../../kernel/src/data";
import { createMlp, createTinyGpt } from "../../kernel/src/models";
import {
  AllReduceMean, DataParallel, DistributedDataParallel, GradientAccumulation, PowerSgdCompression, QsgdCompression, TopKCompression,
  assignBuckets, countBytes, flatParameters, maxAbsDifference, orthonormalizeColumns, qsgdDecode, qsgdEncode, topKIndices,
  validateDataParallelOptions, validateDdpOptions, validateGradientAccumulationOptions, validatePowerSgdOptions, validateQsgdOptions,
  validateTopKOptions, type Collectives,
} from "../../kernel/src/techniques";

/** A world of one rank: every collective returns its input (what allReduce and allGather do when size is 1). */
const single: Collectives = { rank: 0, size: 1, allReduce: async (x) => x, allGather: async (x) => x };

test("bad options fail before training with an error naming the option", () => {
  assert.throws(() => validateTopKOptions({ ratio: 0 }), { name: "RangeError", message: "topK.ratio must be in (0, 1], got 0" });
  assert.throws(() => validateTopKOptions({ ratio: 1.5 }), /topK\.ratio must be in \(0, 1\], got 1\.5/);
  assert.throws(() => validateTopKOptions({ errorFeedback: "yes" as unknown as boolean }), { name: "TypeError", message: /topK\.errorFeedback must be true or false/ });
  assert.throws(() => validatePowerSgdOptions({ rank: 0 }), /powerSgd\.rank must be an integer >= 1, got 0/);
  assert.throws(() => validateQsgdOptions({ levels: 128 }), /qsgd\.levels must be an integer in \[1, 127\], got 128/);
  assert.throws(() => validateQsgdOptions({ norm: "l1" as "l2" }), /qsgd\.norm must be one of max\|l2, got "l1"/);
  assert.throws(() => validateDdpOptions({ bucketCapMiB: 0 }), /ddp\.bucketCapMiB must be in \(0, Infinity\], got 0/);
  assert.throws(() => validateDdpOptions({ firstBucketMiB: -1 }), /ddp\.firstBucketMiB/);
  assert.throws(() => validateGradientAccumulationOptions({ microBatches: 0 }), /gradientAccumulation\.microBatches must be an integer >= 1, got 0/);
  assert.throws(() => validateDataParallelOptions({ lr: 0 }), /dataParallel\.lr must be in \(0, Infinity\], got 0/);
  assert.throws(() => validateDataParallelOptions({ lrate: 1 } as object), { name: "TypeError", message: /dataParallel\.lrate is not an option/ });
  assert.equal(validateTopKOptions({}).ratio, 0.01, "defaults fill what is left out");
});

test("DDP buckets fill in reverse parameter order, the first one smaller, never splitting a parameter", () => {
  // bytes of params 0..5 in forward order
  const buckets = assignBuckets([400, 40, 300, 30, 200, 20], 250, 500);
  assert.deepEqual(buckets, [[5, 4, 3], [2, 1], [0]]); // 250 fits the first cap exactly
  assert.deepEqual(assignBuckets([4000, 4], 100, 100), [[1], [0]], "an oversized parameter gets a bucket of its own");
  const model = createMlp({ sizes: [64, 64, 64, 4] });
  const ddp = new DistributedDataParallel(model, single, { firstBucketMiB: 1 / 64, bucketCapMiB: 1 / 32 });
  assert.ok(ddp.buckets.length >= 3, `several buckets for a small model: ${JSON.stringify(ddp.buckets)}`);
  assert.deepEqual(ddp.buckets.flat(), [...model.params.keys()].reverse());
});

test("top-k picks the k largest magnitudes, and error feedback keeps exactly what was not sent", async () => {
  const random = seededRandom(3);
  const values = Float32Array.from({ length: 1000 }, () => random() - 0.5);
  const indices = topKIndices(values, 10);
  const expected = [...values.keys()].sort((a, b) => Math.abs(values[b]!) - Math.abs(values[a]!)).slice(0, 10).sort((a, b) => a - b);
  assert.deepEqual([...indices], expected);
  const topk = new TopKCompression({ ratio: 0.01 });
  const [sent] = await topk.sync([values], single, [[1000]]);
  assert.equal(sent!.filter((v) => v !== 0).length, 10);
  // Next step with a zero gradient: the residual (everything not sent) is what gets ranked now.
  const [second] = await topk.sync([new Float32Array(1000)], single, [[1000]]);
  const both = Float32Array.from(sent!, (v, i) => v + second![i]!);
  assert.equal(both.filter((v, i) => v !== 0 && v === values[i]).length, 20, "20 distinct original entries sent over two steps");
  assert.equal(topk.expectedPayloadBytes([[1000]]), 8 * 10);
});

test("QSGD int8 is unbiased: the mean of many decodes approaches v, within 4 standard errors", () => {
  const v = Float32Array.from([0.9, -0.31, 0.004, 0, -1, 0.5]);
  const random = seededRandom(11);
  const draws = 20_000;
  for (const norm of ["max", "l2"] as const) {
    const sum = new Float64Array(v.length);
    for (let d = 0; d < draws; d++) {
      const { scale, q } = qsgdEncode(v, 7, norm, random);
      qsgdDecode(scale, q, 7).forEach((x, i) => (sum[i]! += x));
    }
    const scale = norm === "max" ? 1 : Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    // one level is scale/7; rounding variance <= (scale/7)^2 / 4
    const standardError = scale / 7 / 2 / Math.sqrt(draws);
    v.forEach((x, i) => assert.ok(Math.abs(sum[i]! / draws - x) < 4 * standardError + 1e-7, `${norm}: entry ${i}: mean ${sum[i]! / draws} vs ${x}`));
  }
  assert.equal(new QsgdCompression().expectedPayloadBytes([[10, 20], [20]]), 200 + 4 + 20 + 4);
});

test("PowerSGD sends (n + m) r numbers per matrix, is exact at full rank, and its error feedback is M - P Q^T", async () => {
  const power = new PowerSgdCompression({ rank: 2 });
  assert.equal(power.expectedPayloadBytes([[30, 20], [20], [20, 5]]), 4 * ((30 + 20) * 2 + 20 + (20 + 5) * 2));
  assert.equal(new PowerSgdCompression({ rank: 9 }).expectedPayloadBytes([[3, 4]]), 4 * (3 + 4) * 3, "r clipped to min(n, m)");
  const random = seededRandom(1);
  const m = Float32Array.from({ length: 4 * 3 }, () => random() - 0.5);
  const exact = await new PowerSgdCompression({ rank: 3 }).sync([m], single, [[4, 3]]);
  assert.ok(maxAbsDifference(exact[0]!, m) < 1e-5, "rank 3 of a 4x3 matrix reconstructs it");
  const counted = countBytes(single);
  const low = new PowerSgdCompression({ rank: 1 });
  const [approx] = await low.sync([m, Float32Array.of(1, 2)], counted, [[4, 3], [2]]);
  assert.ok(maxAbsDifference(approx!, m) > 1e-3, "rank 1 loses something");
  // With a zero next gradient, EF makes the next output approximate exactly what was lost.
  const lost = Float32Array.from(m, (x, i) => x - approx![i]!);
  const [next] = await low.sync([new Float32Array(12), new Float32Array(2)], counted, [[4, 3], [2]]);
  const dot = next!.reduce((s, x, i) => s + x * lost[i]!, 0);
  assert.ok(dot > 0, "the residual is sent next");
  const p = Float32Array.from([3, 1, 4, 1, 5, 9]); // [3, 2]
  orthonormalizeColumns(p, 3, 2);
  const column = (j: number) => [p[j]!, p[2 + j]!, p[4 + j]!];
  const dotCols = column(0).reduce((s, x, i) => s + x * column(1)[i]!, 0);
  assert.ok(Math.abs(dotCols) < 1e-6 && Math.abs(column(0).reduce((s, x) => s + x * x, 0) - 1) < 1e-6);
});

test("DDP trains a model with a tied parameter (GPT-2's wte, in the embedding and head stages) as the whole tape does", async () => {
  const options = { vocabSize: 40, blockSize: 8, nEmbd: 16, nHead: 2, nLayer: 2, seed: 3, tieEmbeddings: true };
  const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 7 + 3) % 40);
  const whole = new DataParallel(createTinyGpt(options), single, { lr: 0.1 });
  const staged = new DistributedDataParallel(createTinyGpt(options), single, { lr: 0.1, firstBucketMiB: 1 / 1024, bucketCapMiB: 1 / 256 });
  assert.equal(staged.model.stages.flatMap((stage) => stage.params).length, staged.model.params.length + 1, "wte sits in two stages");
  const nextA = tokenBatches(tokens, 4, 8, 1), nextB = tokenBatches(tokens, 4, 8, 1);
  for (let step = 0; step < 3; step++) {
    const a = nextA(), b = nextB();
    await whole.step(a);
    await staged.step(b);
    tf.dispose([a.x, a.y, b.x, b.y]);
  }
  // DDP's staged backward sums wte's two gradients; without the sum (only one stage's part) the weights part at ~1e-2
  const difference = maxAbsDifference(await flatParameters(whole.model), await flatParameters(staged.model));
  assert.ok(difference < 1e-5, `max |difference| ${difference}`);
});

test("m micro-batches of b rows give the same parameters as one batch of m*b rows (float32 tolerance)", async () => {
  const data = linearRegression({ n: 64, inputs: 6, outputs: 2, seed: 5 });
  const whole = datasetBatch(data, [...Array(64).keys()]);
  const one = new DataParallel(createMlp({ sizes: [6, 16, 2], task: "regression", seed: 1 }), single, { lr: 0.05 });
  const accumulated = new GradientAccumulation(
    new DataParallel(createMlp({ sizes: [6, 16, 2], task: "regression", seed: 1 }), single, { lr: 0.05 }),
    { microBatches: 4 },
  );
  const micro = splitBatch(whole, 4);
  for (let step = 0; step < 5; step++) {
    await one.step(whole);
    await accumulated.step(micro);
  }
  const difference = maxAbsDifference(await flatParameters(one.model), await flatParameters(accumulated.dataParallel.model));
  assert.ok(difference < 1e-5, `max |difference| ${difference}`);
  await assert.rejects(accumulated.step(micro.slice(1)), /got 3 micro-batches, gradientAccumulation\.microBatches is 4/);
  tf.dispose([whole.x, whole.y]);
});

test("the byte counter counts each collective's payload, and AllReduceMean's formula is 4 bytes per parameter", async () => {
  const counted = countBytes(single);
  await counted.allReduce(new Float32Array(10));
  await counted.allGather(new Uint8Array(3));
  assert.deepEqual({ ...counted.counts }, { bytes: 43, calls: 2, byOp: { allReduce: 40, allGather: 3 } });
  counted.reset();
  assert.equal(counted.counts.bytes, 0);
  assert.equal(new AllReduceMean().expectedPayloadBytes([[3, 4], [4]]), 64);
});
