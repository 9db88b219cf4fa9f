import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { seededRandom, tokenBatch } from "../../kernel/src/data";
import { createGpt2Small, createTinyGpt, GPT2_SMALL, gptParameterCount, parameterCount } from "../../kernel/src/models";
import { DistributedDataParallel, localGradients, type Collectives } from "../../kernel/src/techniques";

// GPT-2 small's sizes at a tiny scale: the full model (124M parameters, GiBs of activations) is the GPU bench's.
const SMALL_SHAPES = { vocabSize: 13, blockSize: 8, nEmbd: 12, nHead: 3, nLayer: 2 };

test("GPT-2 small: the shape formula counts what the model allocates (tied and untied), and gives about 124M at full size", () => {
  for (const tieEmbeddings of [true, false]) {
    const model = createTinyGpt({ ...SMALL_SHAPES, tieEmbeddings });
    assert.equal(parameterCount(model.params), gptParameterCount({ ...SMALL_SHAPES, tieEmbeddings }), `tieEmbeddings ${tieEmbeddings}`);
    tf.dispose(model.params);
  }
  const full = gptParameterCount(GPT2_SMALL);
  console.log(`GPT-2 small (vocabulary ${GPT2_SMALL.vocabSize}, tied head): ${full.toLocaleString("en")} parameters`);
  assert.equal(full, 124_475_904);
  // GPT-2 small's published count, at its own vocabulary of 50,257.
  assert.equal(gptParameterCount({ ...GPT2_SMALL, vocabSize: 50257 }), 124_439_808);
  assert.equal(gptParameterCount({ ...GPT2_SMALL, tieEmbeddings: false }), 124_475_904 + 768 * 50304);
});

test("GPT-2 small's layout at a tiny scale: the head is the token embedding, listed once, and its gradient sums both uses", async () => {
  const gpt = createGpt2Small(SMALL_SHAPES);
  assert.deepEqual({ ...gpt.options }, { ...GPT2_SMALL, ...SMALL_SHAPES });
  const wte = gpt.stages[0]!.params[0]!;
  const head = gpt.stages[gpt.stages.length - 1]!;
  assert.equal(head.params[2], wte, "the head's weight is wte itself");
  assert.equal(gpt.params.filter((p) => p === wte).length, 1);
  const tokens = Int32Array.from({ length: 100 }, (_, i) => (i * 5 + (i >> 2)) % SMALL_SHAPES.vocabSize);
  const batch = tokenBatch(tokens, 2, SMALL_SHAPES.blockSize, seededRandom(3));
  const loss = tf.tidy(() => gpt.loss(batch).dataSync()[0]!);
  assert.ok(Math.abs(loss - Math.log(SMALL_SHAPES.vocabSize)) < 0.1, `initial loss ${loss} vs ln(vocab)`);
  // Central difference in a few wte entries (used by the embedding and the head) against autodiff.
  const { grads } = await localGradients(gpt, batch);
  const values = Float32Array.from(wte.dataSync());
  const lossAt = (): number => tf.tidy(() => gpt.loss(batch).dataSync()[0]!);
  for (const i of [0, 7, 40, 100]) {
    const original = values[i]!;
    const at = (x: number) => { values[i] = x; wte.assign(tf.tensor(values, wte.shape)); return lossAt(); };
    const numeric = (at(original + 3e-3) - at(original - 3e-3)) / 6e-3;
    at(original);
    const analytic = grads[0]![i]!;
    assert.ok(Math.abs(numeric - analytic) <= 0.05 * Math.abs(analytic) + 2e-3, `wte entry ${i}: finite difference ${numeric}, autodiff ${analytic}`);
  }
  tf.dispose(gpt.params);
});

test("tieEmbeddings must be a boolean", () => {
  assert.throws(() => createTinyGpt({ ...SMALL_SHAPES, tieEmbeddings: "yes" as never }), /tinyGpt\.tieEmbeddings must be true or false, got yes/);
});

test("DDP takes the tied GPT (wte in two stages, once in params: one bucket slot) and the untied one", () => {
  const single: Collectives = { rank: 0, size: 1, allReduce: async (x) => x, allGather: async (x) => x }; // a world of one rank
  const tied = createGpt2Small(SMALL_SHAPES);
  assert.equal(tied.stages.flatMap((stage) => stage.params).length, 29);
  assert.deepEqual(new DistributedDataParallel(tied, single).buckets.flat().sort((a, b) => a - b), [...Array(28).keys()], "each of the 28 parameters in one bucket, once");
  const untied = createGpt2Small({ ...SMALL_SHAPES, tieEmbeddings: false });
  assert.doesNotThrow(() => new DistributedDataParallel(untied, single));
  // a stage parameter that model.params leaves out is refused by name
  const missing = { ...untied, params: untied.params.slice(1) };
  assert.throws(() => new DistributedDataParallel(missing, single), /ddp: parameter 0 of stage 0 is not in model.params/);
  tf.dispose([...tied.params, ...untied.params]);
});
