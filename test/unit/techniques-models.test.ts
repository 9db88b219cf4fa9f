import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { datasetBatch, linearRegression, seededRandom, teacherClassification, tokenBatch, type TensorBatch } from "../../kernel/src/data";
import { createMlp, createTinyGpt, parameterCount } from "../../kernel/src/models";
import { localGradients, stagedBackward, type Model } from "../../kernel/src/techniques";

/** Central difference of the loss in a few entries of every parameter, against the autodiff gradient. */
async function checkFiniteDifferences(model: Model<TensorBatch>, batch: TensorBatch, eps: number, entriesPerParam = 3): Promise<void> {
  const { grads } = await localGradients(model, batch);
  const lossAt = (): number => tf.tidy(() => model.loss(batch).dataSync()[0]!);
  const random = seededRandom(5);
  let checked = 0;
  model.params.forEach((param, p) => {
    const values = Float32Array.from(param.dataSync());
    for (let e = 0; e < entriesPerParam; e++) {
      const i = Math.floor(random() * values.length);
      const original = values[i]!;
      values[i] = original + eps;
      param.assign(tf.tensor(values, param.shape));
      const up = lossAt();
      values[i] = original - eps;
      param.assign(tf.tensor(values, param.shape));
      const down = lossAt();
      values[i] = original;
      param.assign(tf.tensor(values, param.shape));
      const numeric = (up - down) / (2 * eps);
      const analytic = grads[p]![i]!;
      // float32 losses: allow an absolute floor for entries whose gradient is ~0
      assert.ok(Math.abs(numeric - analytic) <= 0.05 * Math.abs(analytic) + 2e-3,
        `param ${p} entry ${i}: finite difference ${numeric}, autodiff ${analytic}`);
      checked++;
    }
  });
  assert.ok(checked >= model.params.length);
}

test("MLP gradients match finite differences (regression and classification)", async () => {
  const reg = linearRegression({ n: 16, inputs: 5, outputs: 2, seed: 1 });
  await checkFiniteDifferences(createMlp({ sizes: [5, 7, 2], activation: "tanh", task: "regression", seed: 2 }), datasetBatch(reg, [...Array(16).keys()]), 1e-2);
  const cls = teacherClassification({ n: 16, inputs: 5, outputs: 3, seed: 1 });
  await checkFiniteDifferences(createMlp({ sizes: [5, 6, 3], activation: "tanh", seed: 3 }), datasetBatch(cls, [...Array(16).keys()]), 1e-2);
});

test("tiny GPT gradients match finite differences, and its first loss is about ln(vocab)", async () => {
  const vocab = 11;
  const gpt = createTinyGpt({ vocabSize: vocab, blockSize: 6, nEmbd: 8, nHead: 2, nLayer: 1, seed: 4 });
  const tokens = Int32Array.from({ length: 200 }, (_, i) => (i * 7 + (i >> 3)) % vocab);
  const batch = tokenBatch(tokens, 3, 6, seededRandom(1));
  const loss = tf.tidy(() => gpt.loss(batch).dataSync()[0]!);
  assert.ok(Math.abs(loss - Math.log(vocab)) < 0.1, `initial loss ${loss} vs ln(${vocab}) = ${Math.log(vocab)}`);
  await checkFiniteDifferences(gpt, batch, 3e-3, 2);
});

test("a causal GPT's logits at position t do not depend on later tokens", () => {
  const gpt = createTinyGpt({ vocabSize: 9, blockSize: 5, nEmbd: 8, nHead: 2, nLayer: 2 });
  const a = tf.tensor2d([[1, 2, 3, 4, 5]], [1, 5], "int32");
  const b = tf.tensor2d([[1, 2, 3, 8, 0]], [1, 5], "int32");
  const la = gpt.logits(a).arraySync() as number[][][];
  const lb = gpt.logits(b).arraySync() as number[][][];
  for (let t = 0; t < 3; t++) la[0]![t]!.forEach((v, j) => assert.ok(Math.abs(v - lb[0]![t]![j]!) < 1e-5, `t=${t}`));
  assert.ok(la[0]![4]!.some((v, j) => Math.abs(v - lb[0]![4]![j]!) > 1e-4), "the last position does see the change");
});

test("stage-by-stage backward gives the same gradients as one tape, last stage first", async () => {
  const cls = teacherClassification({ n: 32, inputs: 6, outputs: 4, seed: 1 });
  const batch = datasetBatch(cls, [...Array(32).keys()]);
  for (const model of [
    createMlp({ sizes: [6, 10, 8, 4], seed: 9 }),
    createTinyGpt({ vocabSize: 7, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 2 }),
  ]) {
    const input: TensorBatch = model.stages[0]!.name === "embedding" ? tokenBatch(Int32Array.from({ length: 50 }, (_, i) => i % 7), 2, 4, seededRandom(2)) : batch;
    const reference = await localGradients(model, input);
    const order: number[] = [];
    const staged: Float32Array[] = new Array(model.params.length);
    let offset = model.params.length;
    const loss = await stagedBackward(model, input, (stage, grads) => {
      order.push(stage);
      offset -= grads.length;
      grads.forEach((g, j) => (staged[offset + j] = g));
    });
    assert.deepEqual(order, [...model.stages.keys()].reverse());
    assert.ok(Math.abs(loss - reference.loss) < 1e-5);
    reference.grads.forEach((g, p) => g.forEach((v, i) => assert.ok(Math.abs(v - staged[p]![i]!) < 1e-5, `param ${p}[${i}]`)));
  }
});

test("model options are checked, naming the option", () => {
  assert.throws(() => createMlp({ sizes: [4] }), /mlp\.sizes must list at least 2 widths/);
  assert.throws(() => createMlp({ sizes: [4, 0] }), /mlp\.sizes\[1\] must be an integer >= 1, got 0/);
  assert.throws(() => createTinyGpt({ vocabSize: 5, nEmbd: 10, nHead: 3 }), /tinyGpt\.nEmbd must divide by tinyGpt\.nHead/);
  assert.equal(parameterCount(createMlp({ sizes: [3, 4, 2] }).params), 3 * 4 + 4 + 4 * 2 + 2);
});
