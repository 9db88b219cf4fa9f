// distlab's SGD (kernel/src/compute/sgd.ts): on cpu it is tf.train.sgd's
// update; on wasm the fused in-place update (wasm/sgd-update.ts), which must
// give the stock update's parameters bit for bit, follow setLearningRate, and
// write only into buffers the variables own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fusedSgdAvailable, sgd } from "../../kernel/src/compute/sgd";
import { backendsUnderTest, tf, trainRegression, values } from "./compute-backends";

/** The learning rate 0.05 from step 2 on (the fused update must read setLearningRate's value). */
const halveBeforeStep2 = (optimizer: tf.SGDOptimizer) => (step: number) => {
  if (step === 2) optimizer.setLearningRate(0.05);
};

test("sgd() matches tf.train.sgd on cpu and wasm (fused on wasm), bit for bit, through setLearningRate, and leaves no tensors behind", async () => {
  for (const backend of ["cpu", ...(await backendsUnderTest()).filter((b) => b === "wasm")]) {
    await tf.setBackend(backend);
    assert.equal(fusedSgdAvailable(tf), backend === "wasm", `fused path on ${backend}`);
    // 30, 5 and 15 values: the SIMD loop's multiple-of-4 prefix and the JavaScript tail
    const stockOptimizer = tf.train.sgd(0.1);
    const stock = trainRegression(stockOptimizer, halveBeforeStep2(stockOptimizer));
    const before = tf.memory().numTensors;
    const ourOptimizer = sgd(tf, 0.1);
    const ours = trainRegression(ourOptimizer, halveBeforeStep2(ourOptimizer));
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors left behind`);
    stock.forEach((expected, i) => assert.deepEqual(ours[i], expected, `${backend}: parameter ${i}`));
    const initial = tf.tidy(() => values([6, 5], 1).dataSync());
    assert.ok(stock[0]!.some((v, i) => v !== initial[i]), "the parameters moved");
  }
  await tf.setBackend("cpu");
});

test("the fused wasm SGD writes in place only into buffers the variables own", async () => {
  assert.ok((await backendsUnderTest()).includes("wasm"), "the wasm backend is not available");
  await tf.setBackend("wasm");
  const init = values([9, 3], 6);
  const w = tf.variable(init); // shares init's buffer
  const alias = tf.clone(w); // shares it too (Identity)
  const x = values([4, 9], 7);
  const optimizer = sgd(tf, 0.1);
  for (let step = 0; step < 2; step++) optimizer.minimize(() => tf.mean(tf.square(tf.matMul(x, w))) as tf.Scalar);
  const expected = tf.tidy(() => values([9, 3], 6).dataSync());
  assert.deepEqual(init.dataSync(), expected, "the tensor the variable was made from is unchanged");
  assert.deepEqual(alias.dataSync(), expected, "a clone of the variable is unchanged");
  assert.ok(w.dataSync().some((v, i) => v !== expected[i]), "the variable moved");
  assert.equal(optimizer.iterations, 2);
  tf.dispose([init, w, alias, x]);
  optimizer.dispose();
  await tf.setBackend("cpu");
});

test("DISTLAB_WASM_FUSED_SGD=0 keeps tf.train.sgd's update on wasm", async () => {
  assert.ok((await backendsUnderTest()).includes("wasm"), "the wasm backend is not available");
  await tf.setBackend("wasm");
  assert.equal(fusedSgdAvailable(tf, { DISTLAB_WASM_FUSED_SGD: "0" }), false);
  assert.equal(fusedSgdAvailable(tf, {}), true);
  await tf.setBackend("cpu");
});
