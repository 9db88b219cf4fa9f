// distlab's Adam (kernel/src/compute/adam.ts): on cpu it is tf.train.adam's
// update; on wasm the fused in-place update (wasm/adam-update.ts), which
// must give the stock update's parameters bit for bit; the fused webgpu
// update (one dispatch per two variables) is checked here for what it
// records, against a stand-in of the webgpu backend, and numerically on a
// GPU by bench/gpu/webgpu-bench.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { adam, fusedAdamAvailable } from "../../kernel/src/compute/adam";
import { hasAdamInternals, recordAdamUpdates, type WebGpuBackendInternals } from "../../kernel/src/compute/webgpu/adam-update";
import { backendsUnderTest, tf, trainRegression, values } from "./compute-backends";


test("adam() matches tf.train.adam on cpu and wasm (fused on wasm), bit for bit, and leaves no tensors behind", async () => {
  for (const backend of ["cpu", ...(await backendsUnderTest()).filter((b) => b === "wasm")]) {
    await tf.setBackend(backend);
    assert.equal(fusedAdamAvailable(tf), backend === "wasm", `fused path on ${backend}`);
    // 30, 5 and 15 values: the SIMD loop's multiple-of-4 prefix and the JavaScript tail
    const stock = trainRegression(tf.train.adam(0.01, 0.8, 0.95));
    const before = tf.memory().numTensors;
    const ours = trainRegression(adam(tf, 0.01, 0.8, 0.95));
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors left behind`);
    stock.forEach((expected, i) => assert.deepEqual(ours[i], expected, `${backend}: parameter ${i}`));
    const initial = tf.tidy(() => values([6, 5], 1).dataSync());
    assert.ok(stock[0]!.some((v, i) => v !== initial[i]), "the parameters moved");
  }
  await tf.setBackend("cpu");
});

test("the fused wasm update writes in place only into buffers the variables own", async () => {
  if (!(await backendsUnderTest()).includes("wasm")) return;
  await tf.setBackend("wasm");
  const init = values([9, 3], 6);
  const w = tf.variable(init); // shares init's buffer
  const alias = tf.clone(w); // shares it too (Identity)
  const x = values([4, 9], 7);
  const optimizer = adam(tf, 0.1);
  for (let step = 0; step < 2; step++) optimizer.minimize(() => tf.mean(tf.square(tf.matMul(x, w))) as tf.Scalar);
  const expected = tf.tidy(() => values([9, 3], 6).dataSync());
  assert.deepEqual(init.dataSync(), expected, "the tensor the variable was made from is unchanged");
  assert.deepEqual(alias.dataSync(), expected, "a clone of the variable is unchanged");
  assert.ok(w.dataSync().some((v, i) => v !== expected[i]), "the variable moved");
  tf.dispose([init, w, alias, x]);
  optimizer.dispose();
  await tf.setBackend("cpu");
});

test("DISTLAB_WASM_FUSED_ADAM=0 keeps tf.train.adam's update on wasm", async () => {
  if (!(await backendsUnderTest()).includes("wasm")) return;
  await tf.setBackend("wasm");
  assert.equal(fusedAdamAvailable(tf, { DISTLAB_WASM_FUSED_ADAM: "0" }), false);
  assert.equal(fusedAdamAvailable(tf, {}), true);
  await tf.setBackend("cpu");
  assert.equal(fusedAdamAvailable(tf, {}), false);
});

/** A stand-in for TF.js's WebGPUBackend: records what the fused update asks of the device. */
function fakeBackend() {
  const calls: string[] = [];
  const buffers = new Map<object, object>();
  let nextBuffer = 0;
  const pass = {
    setPipeline: () => calls.push("pipeline"),
    setBindGroup: () => calls.push("bindGroup"),
    dispatchWorkgroups: (x: number, y = 1) => calls.push(`dispatch ${x}x${y}`),
  };
  const backend: WebGpuBackendInternals & { calls: string[] } = {
    calls,
    device: {
      createShaderModule: () => ({}),
      createComputePipeline: () => ({ getBindGroupLayout: () => ({}) }),
      createBindGroup: (d: object) => { calls.push(`bind ${(d as { entries: unknown[] }).entries.length}`); return {}; },
      createBuffer: () => ({ id: nextBuffer++ }),
      queue: { writeBuffer: (_b: object, _o: number, data: ArrayBufferView) => calls.push(`write ${Array.from(data as Float32Array).map((v) => +v.toFixed(4)).join(",")}`) },
    },
    tensorMap: { get: (dataId: object) => ({ resource: buffers.get(dataId) ?? buffers.set(dataId, { id: nextBuffer++ }).get(dataId), refCount: 1 }) },
    bufferManager: { acquireBuffer: () => ({ id: nextBuffer++ }) },
    commandEncoder: null,
    computePassEncoder: null,
    commandQueueOwnedIds: new WeakSet(),
    uniformPendingDisposal: [],
    dispatchCountInPass: 0,
    uploadToGPU: () => undefined,
    ensureCommandEncoderReady() { this.commandEncoder ??= { beginComputePass: () => { calls.push("pass"); return pass; } }; },
    endComputePassEncoder() { calls.push("end"); this.computePassEncoder = null; },
    submitQueue() { calls.push("submit"); this.dispatchCountInPass = 0; this.commandEncoder = null; },
    refCount: () => 1,
  };
  return backend;
}

test("the fused update records one dispatch per two variables, splits large ones over y, keeps TF.js's submit cadence", () => {
  const backend = fakeBackend();
  assert.ok(hasAdamInternals(backend), "the stand-in has what the fused path checks for");
  assert.equal(hasAdamInternals({ device: {} }), false, "a backend without TF.js's internals is not used");
  const tensor = (size: number) => ({ dataId: {}, dtype: "float32", size });
  const slot = (size: number) => ({ x: tensor(size), m: tensor(size), v: tensor(size), g: tensor(size) });
  recordAdamUpdates(backend, [slot(1000), slot(256 * 65535 + 1), slot(10), slot(0), slot(300), slot(5)], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, c1: 0.1, c2: 0.01 }, 2);
  const dispatches = backend.calls.filter((c) => c.startsWith("dispatch"));
  // 4 + 65536 workgroups over y; 1 + 2 (the empty variable skipped); the last variable alone.
  assert.deepEqual(dispatches, ["dispatch 32770x2", "dispatch 3x1", "dispatch 1x1"]);
  assert.deepEqual(backend.calls.filter((c) => c.startsWith("bind ")), ["bind 10", "bind 10", "bind 6"], "x, m, v, g of each variable and two uniforms bound");
  assert.equal(backend.calls[0], "write 0.1,0.9,0.99,0,0.1,0.01,0.1,0.01", "hyperparameters: lr, beta1, beta2, eps, 1-beta1, 1-beta2, c1, c2");
  assert.equal(backend.calls.filter((c) => c === "submit").length, 1, "submitted after 2 dispatches, the third left in the open pass");
  assert.equal(backend.dispatchCountInPass, 1);
  assert.equal(backend.uniformPendingDisposal.length, 1, "the hyperparameter buffer goes back to the pool at the next submit");
});
