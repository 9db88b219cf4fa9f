// The wasm backend's elementwise passes in native code (kernel/src/compute/cpu-vector.ts,
// kernel/native/cpu-vector.cc): against a float64 reference, as the GELU op runs them on wasm
// (and the WebAssembly loops with DISTLAB_CPU_VECTOR=off), and every bad argument and setting
// refused with its name. `npm test`'s set-up builds the addon, so a missing one fails here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { openCpuVector, type CpuVector } from "../../kernel/src/compute/cpu-vector";

const K = Math.sqrt(2 / Math.PI), C = 0.044715;

function theAddon(): CpuVector {
  const found = openCpuVector({});
  assert.ok(found, "the cpu-vector addon is not built (npm test's set-up builds it with g++)");
  return found;
}

/** n values over [-6, 6] (a GELU's inputs in a trained model stay well inside), then the clamp's edges and zero. */
function inputs(n: number): Float32Array {
  const x = new Float32Array(n + 6);
  for (let i = 0; i < n; i++) x[i] = -6 + (12 * i) / (n - 1);
  x.set([0, -0, 20, -20, 60, -60], n);
  return x;
}

test("gelu and geluGrad match the tanh formula in float64, at every length (vector body and scalar tail)", () => {
  const vector = theAddon();
  assert.match(vector.isa(), /^(x86-64-v[34]|baseline)$/);
  for (const n of [1, 15, 16, 17, 4099]) {
    const x = n === 1 ? Float32Array.of(0.5) : inputs(n);
    const y = new Float32Array(x.length), s = new Float32Array(x.length), dx = new Float32Array(x.length);
    const dy = x.map((_, i) => ((i * 7) % 13) / 13 - 0.5);
    vector.gelu(x, y, s);
    vector.geluGrad(dy, x, s, dx);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!, t = Math.tanh(K * (v + C * v ** 3));
      const yRef = 0.5 * v * (1 + t), sRef = 0.5 * (1 + t);
      const dxRef = dy[i]! * (sRef + 0.5 * v * (1 - t * t) * K * (1 + 3 * C * v * v));
      // float32 rounding of u alone moves e^(-2u) by up to about 25 ulp at |x| = 6 (2u near 25)
      assert.ok(Math.abs(y[i]! - yRef) <= 1e-5 * Math.abs(yRef) + 1e-30, `gelu(${v}) = ${y[i]}, expected ${yRef} (n = ${n})`);
      assert.ok(Math.abs(s[i]! - sRef) <= 1e-5 * Math.abs(sRef) + 1e-30, `s(${v}) = ${s[i]}, expected ${sRef} (n = ${n})`);
      // the derivative crosses zero near x = -0.75, where its two terms cancel: an absolute bound there
      assert.ok(Math.abs(dx[i]! - dxRef) <= 2e-6 * Math.abs(dy[i]!) + 1e-5 * Math.abs(dxRef), `geluGrad at ${v} = ${dx[i]}, expected ${dxRef} (n = ${n})`);
    }
  }
});

test("in place: y and s may be other views of one heap, and nothing outside the arrays is written", () => {
  const vector = theAddon();
  const heap = new Float32Array(64).fill(7);
  const x = heap.subarray(1, 11), y = heap.subarray(12, 22), s = heap.subarray(23, 33);
  x.set(inputs(4));
  vector.gelu(x, y, s);
  for (const i of [0, 11, 22, 33, 63]) assert.equal(heap[i], 7, `element ${i} outside the arrays changed`);
  assert.equal(y[4], 0); // gelu(0)
  assert.equal(s[4], 0.5);
});

test("bad arguments are refused, naming the array", () => {
  const vector = theAddon();
  const a = new Float32Array(8);
  assert.throws(() => vector.gelu(a, a, new Float32Array(7)), /gelu\(x, y, s\): s has 7 floats, x 8 \(all must be one length\)/);
  assert.throws(() => vector.geluGrad(a, new Float64Array(8) as never, a, a), /geluGrad\(dy, x, s, dx\): x must be a Float32Array/);
  assert.throws(() => (vector.gelu as (...args: unknown[]) => void)(a, a), /gelu\(x, y, s\) takes 3 Float32Arrays/);
});

test("DISTLAB_CPU_VECTOR: off keeps the WebAssembly loops; any other value is refused with the variable's name", () => {
  assert.equal(openCpuVector({ DISTLAB_CPU_VECTOR: "off" }), undefined);
  assert.throws(() => openCpuVector({ DISTLAB_CPU_VECTOR: "avx512" }), /DISTLAB_CPU_VECTOR must be unset or "off", got "avx512"/);
});

/** Runs `body(require)` on a worker thread with `env` (the addon's choice is made once per thread). */
function inWorker(body: string, env: NodeJS.ProcessEnv = {}): Promise<unknown> {
  const source = `require("tsx/cjs"); const { parentPort } = require("node:worker_threads");
    Promise.resolve().then(() => (${body})(require)).then((v) => parentPort.postMessage({ v }), (e) => parentPort.postMessage({ e: String(e && e.message || e) }));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, env: { ...process.env, ...env } });
    worker.once("message", (m: { v?: unknown; e?: string }) => (m.e !== undefined ? reject(new Error(m.e)) : resolve(m.v)));
    worker.once("error", reject);
  });
}

const path = (p: string) => JSON.stringify(require.resolve(p));

// The GELU op on wasm ([40, 33]: the SIMD loops' multiple of 4; [7, 11]: their JavaScript tail), its
// value and gradient against TF.js's own gradient of the formula on the cpu backend; and how many
// times the native pass ran. Error as compute-fused.test.ts measures it: |ours - cpu| / (1 + |cpu|).
const GELU_ON_WASM = `async (require) => {
  const tf = require("@tensorflow/tfjs");
  const { chooseBackend } = require(${path("../../kernel/src/compute/backend-choice")});
  const { gelu } = require(${path("../../kernel/src/compute/fused")});
  const { cpuVector } = require(${path("../../kernel/src/compute/cpu-vector")});
  const formula = (x) => tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(${K}, tf.add(x, tf.mul(${C}, tf.pow(x, 3)))))));
  const both = (f, shape) => {
    const x = tf.mul(tf.sin(tf.range(0, shape[0] * shape[1]).reshape(shape)), 6), dy = tf.cos(tf.range(0, shape[0] * shape[1]).reshape(shape));
    return [f(x), tf.grad((a) => tf.sum(tf.mul(f(a), dy)))(x)].map((t) => t.dataSync());
  };
  let nativeCalls = 0;
  const vector = cpuVector();
  if (vector) for (const name of ["gelu", "geluGrad"]) { const f = vector[name]; vector[name] = (...a) => { nativeCalls++; return f(...a); }; }
  let worst = 0;
  for (const shape of [[40, 33], [7, 11]]) {
    await tf.setBackend("cpu");
    const expected = both(formula, shape);
    await chooseBackend(tf, "wasm");
    const ours = both((x) => gelu(tf, x), shape);
    ours.forEach((values, o) => values.forEach((v, i) => { const e = expected[o][i]; worst = Math.max(worst, Math.abs(v - e) / (1 + Math.abs(e))); }));
  }
  return { nativeCalls, worst, device: (await chooseBackend(tf, "wasm")).device };
}`;

test("the GELU op on wasm runs the native pass, and with DISTLAB_CPU_VECTOR=off the WebAssembly loops, each matching TF.js's gradient of the formula", async () => {
  const native = (await inWorker(GELU_ON_WASM)) as { nativeCalls: number; worst: number; device: string };
  assert.equal(native.nativeCalls, 6, "per shape: gelu for the value, gelu again inside tf.grad, geluGrad");
  assert.ok(native.worst < 2e-5, `native: relative error ${native.worst}`);
  assert.match(native.device, /, vector passes (x86-64-v[34]|baseline)$/);
  const off = (await inWorker(GELU_ON_WASM, { DISTLAB_CPU_VECTOR: "off" })) as typeof native;
  assert.equal(off.nativeCalls, 0);
  assert.ok(off.worst < 2e-5, `WebAssembly loops: relative error ${off.worst}`);
  assert.doesNotMatch(off.device, /vector passes/);
});

test("a bad DISTLAB_CPU_VECTOR fails the GELU with the variable's name and shows in the device, not in the backend choice", async () => {
  const got = await inWorker(`async (require) => {
    const tf = require("@tensorflow/tfjs");
    const { device } = await require(${path("../../kernel/src/compute/backend-choice")}).chooseBackend(tf);
    let error = "none";
    try { require(${path("../../kernel/src/compute/fused")}).gelu(tf, tf.ones([4])).dataSync(); } catch (e) { error = e.message; }
    return { backend: tf.getBackend(), device, error };
  }`, { DISTLAB_CPU_VECTOR: "yes" });
  const { backend, device, error } = got as { backend: string; device: string; error: string };
  assert.equal(backend, "wasm");
  assert.match(device, /vector passes failing: DISTLAB_CPU_VECTOR must be unset or "off", got "yes"/);
  assert.match(error, /DISTLAB_CPU_VECTOR must be unset or "off", got "yes"/);
});
