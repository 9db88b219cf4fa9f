import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  CharTokenizer, datasetBatch, linearRegression, loadCorpus, seededRandom, shardIndices, splitBatch, teacherClassification, tokenBatch,
} from "../../kernel/src/data";

test("shards are disjoint, cover every index and are padded to equal length like DistributedSampler", () => {
  for (const [n, size] of [[10, 4], [12, 3], [3, 5], [101, 8]] as const) {
    const shards = Array.from({ length: size }, (_, rank) => shardIndices(n, rank, size, { seed: 7 }));
    const perRank = Math.ceil(n / size);
    for (const shard of shards) assert.equal(shard.length, perRank, `n=${n} size=${size}`);
    const all = shards.flat();
    assert.equal(new Set(all).size, n, "every index appears");
    assert.equal(all.length - n, perRank * size - n, "only the padding repeats");
    if (n >= size) {
      // Without padding, positions are disjoint: the first n of the interleaved order are distinct.
      const interleaved = Array.from({ length: perRank * size }, (_, p) => shards[p % size]![Math.floor(p / size)]!);
      assert.equal(new Set(interleaved.slice(0, n)).size, n);
    }
  }
});

test("dropLast cuts to floor(n / size) per rank with no repeats", () => {
  const shards = Array.from({ length: 4 }, (_, rank) => shardIndices(10, rank, 4, { dropLast: true }));
  for (const shard of shards) assert.equal(shard.length, 2);
  assert.equal(new Set(shards.flat()).size, 8);
});

test("each epoch reshuffles; the same (seed, epoch) gives the same order; shuffle false keeps order", () => {
  const epoch0 = shardIndices(100, 1, 4, { seed: 3, epoch: 0 });
  assert.deepEqual(shardIndices(100, 1, 4, { seed: 3, epoch: 0 }), epoch0);
  assert.notDeepEqual(shardIndices(100, 1, 4, { seed: 3, epoch: 1 }), epoch0);
  assert.notDeepEqual(shardIndices(100, 1, 4, { seed: 4, epoch: 0 }), epoch0);
  assert.deepEqual(shardIndices(10, 1, 4, { shuffle: false }), [1, 5, 9]);
});

test("shardIndices rejects a rank outside the group, naming it", () => {
  assert.throws(() => shardIndices(10, 4, 4), /rank must be an integer in 0\.\.3, got 4/);
  assert.throws(() => shardIndices(10, 0, 0), /size must be an integer >= 1, got 0/);
});

test("synthetic datasets are deterministic in the seed and have the promised shapes", () => {
  const a = linearRegression({ n: 50, inputs: 4, outputs: 2, seed: 1 });
  const b = linearRegression({ n: 50, inputs: 4, outputs: 2, seed: 1 });
  assert.deepEqual(a.y, b.y);
  assert.notDeepEqual(linearRegression({ n: 50, inputs: 4, outputs: 2, seed: 2 }).y, a.y);
  assert.equal(a.x.length, 200);
  const c = teacherClassification({ n: 500, inputs: 6, outputs: 3, seed: 1 });
  const counts = [0, 0, 0];
  for (const label of c.y) counts[label]! += 1;
  assert.ok(counts.every((count) => count > 30), `every class occurs: ${counts}`);
  const batch = datasetBatch(c, [0, 1, 2, 3]);
  assert.deepEqual(batch.x.shape, [4, 6]);
  assert.deepEqual(batch.y.shape, [4]);
  assert.equal(batch.y.dtype, "int32");
  const halves = splitBatch(batch, 2);
  assert.deepEqual(halves.map((h) => h.x.shape[0]), [2, 2]);
  assert.throws(() => splitBatch(batch, 3), /parts must divide the batch of 4 rows, got 3/);
  tf.dispose([batch.x, batch.y]);
});

test("the char tokenizer round-trips the corpus, and token batches are shifted by one", () => {
  const corpus = loadCorpus();
  assert.ok(corpus.text.length > 100_000, "the shipped corpus is there");
  assert.ok(corpus.tokenizer.vocabSize > 40 && corpus.tokenizer.vocabSize < 100);
  assert.equal(corpus.tokenizer.decode(corpus.tokenizer.encode("In the beginning")), "In the beginning");
  assert.equal(corpus.train.length + corpus.val.length, corpus.text.length);
  const small = loadCorpus({ maxChars: 1000 });
  assert.equal(small.tokenizer.vocabSize, corpus.tokenizer.vocabSize, "a cut corpus keeps the vocabulary");
  const { x, y } = tokenBatch(corpus.train, 3, 8, seededRandom(0));
  assert.deepEqual(x.shape, [3, 8]);
  const xs = x.arraySync() as number[][];
  const ys = y.arraySync() as number[][];
  for (let b = 0; b < 3; b++) assert.deepEqual(xs[b]!.slice(1), ys[b]!.slice(0, 7));
  assert.throws(() => new CharTokenizer("ab").encode("abc"), /"c" at 2 is not in the vocabulary/);
  tf.dispose([x, y]);
});
