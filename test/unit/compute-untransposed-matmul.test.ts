import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { matMul, untransposedLinear, untransposedMatMul } from "../../kernel/src/compute/fused";

// The ops' gradients are written by hand (products of untransposed operands, for webgpu); here on the CPU backend they must equal TF.js's own.
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
const normal = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed);

test("untransposedMatMul: value and both gradients equal tf.matMul's, 2-D and batched 4-D", () => {
  for (const [aShape, bShape] of [[[5, 7], [7, 3]], [[2, 3, 6, 4], [2, 3, 4, 5]]] as const) {
    const a = normal([...aShape], 1), b = normal([...bShape], 2);
    const dy = normal([...aShape.slice(0, -1), bShape[bShape.length - 1]!], 3);
    const loss = (f: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor) => (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), dy));
    const ours = tf.grads(loss((x, y) => untransposedMatMul(tf, x, y)))([a, b]);
    const theirs = tf.grads(loss((x, y) => tf.matMul(x, y)))([a, b]);
    assert.ok(maxDiff(untransposedMatMul(tf, a, b), tf.matMul(a, b)) < 1e-5);
    assert.ok(maxDiff(ours[0]!, theirs[0]!) < 1e-5, `da differs by ${maxDiff(ours[0]!, theirs[0]!)} at ${aShape}`);
    assert.ok(maxDiff(ours[1]!, theirs[1]!) < 1e-5, `db differs by ${maxDiff(ours[1]!, theirs[1]!)} at ${bShape}`);
  }
});

test("untransposedLinear: value and the gradients of x, w and the bias equal matMul + add's", () => {
  const x = normal([6, 4], 4), w = normal([4, 5], 5), bias = normal([5], 6), dy = normal([6, 5], 7);
  const loss = (f: (...t: tf.Tensor[]) => tf.Tensor) => (...t: tf.Tensor[]) => tf.sum(tf.mul(f(...t), dy));
  const ours = tf.grads(loss((a, b, c) => untransposedLinear(tf, a!, b!, c!)))([x, w, bias]);
  const theirs = tf.grads(loss((a, b, c) => tf.add(tf.matMul(a!, b!), c!)))([x, w, bias]);
  ["dx", "dw", "dbias"].forEach((name, i) => assert.ok(maxDiff(ours[i]!, theirs[i]!) < 1e-5, `${name} differs by ${maxDiff(ours[i]!, theirs[i]!)}`));
});

test("matMul with transposeB is a t(b) off webgpu too", () => {
  const a = normal([3, 4], 8), b = normal([5, 4], 9);
  assert.ok(maxDiff(matMul(tf, a, b, true), tf.matMul(a, b, false, true)) < 1e-5);
});

test("the product tuning (batched transposeA, linear's split-K) gives the same gradients, and a bad split is named", () => {
  const saved = { ...process.env };
  try {
    const x = normal([8, 4], 10), w = normal([4, 3], 11), bias = normal([3], 12), dy = normal([8, 3], 13);
    const a = normal([2, 5, 6], 14), b = normal([2, 6, 3], 15), dc = normal([2, 5, 3], 16);
    const linearGrads = () => tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(untransposedLinear(tf, p, q, r), dy)))([x, w, bias]);
    const productGrads = () => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(untransposedMatMul(tf, p, q), dc)))([a, b]);
    process.env.DISTLAB_WEBGPU_SPLIT_K = "1";
    process.env.DISTLAB_WEBGPU_BATCHED_TRANSPOSE_A = "0";
    const [linearPlain, productPlain] = [linearGrads(), productGrads()];
    process.env.DISTLAB_WEBGPU_SPLIT_K = "4";
    process.env.DISTLAB_WEBGPU_BATCHED_TRANSPOSE_A = "1";
    const [linearTuned, productTuned] = [linearGrads(), productGrads()];
    linearPlain.forEach((g, i) => assert.ok(maxDiff(g, linearTuned[i]!) < 1e-5, `linear gradient ${i} differs by ${maxDiff(g, linearTuned[i]!)} with split-K 4`));
    productPlain.forEach((g, i) => assert.ok(maxDiff(g, productTuned[i]!) < 1e-5, `product gradient ${i} differs by ${maxDiff(g, productTuned[i]!)} with transposeA`));
    process.env.DISTLAB_WEBGPU_SPLIT_K = "0";
    assert.throws(() => linearGrads(), /DISTLAB_WEBGPU_SPLIT_K must be an integer >= 1, got 0/);
  } finally {
    process.env = saved;
  }
});
