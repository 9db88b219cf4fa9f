// The wasm backend's elementwise passes in native code (kernel/src/compute/cpu-vector.ts,
// kernel/native/cpu-vector.cc): against a float64 reference, as the GELU op runs them on wasm
// (and the WebAssembly loops with DISTLAB_CPU_VECTOR=off), and every bad argument and setting
// refused with its name. `npm test`'s set-up builds the addon, so a missing one fails here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inWorker } from "./in-worker";
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
  assert.match(vector.isa(), /^(avx512f|avx2|baseline)$/);
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

/** Deterministic values in [-1, 1) (the same sequence each run). */
function sequence(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; out[i] = state / 2 ** 31 - 1; }
  return out;
}

function assertNear(got: Float32Array, expected: Float64Array, tolerance: number, what: string): void {
  assert.equal(got.length, expected.length, what);
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i]! - expected[i]!) <= tolerance * (1 + Math.abs(expected[i]!)), `${what}: element ${i} is ${got[i]}, expected ${expected[i]}`);
  }
}

for (const time of [64, 7]) {
  test(`causalSoftmax and its gradient over ${time} keys (${time % 16 === 0 ? "whole blocks of 16" : "rows of any length"}) match float64, future keys exactly 0`, () => {
    const vector = theAddon();
    const rows = 2 * time * time, scale = 0.3;
    const s = sequence(rows, 1).map((v) => 20 * v), dy = sequence(rows, 2);
    const y = new Float32Array(rows), ds = new Float32Array(rows);
    vector.causalSoftmax(s, y, time, scale);
    vector.causalSoftmaxGrad(y, dy, ds, time, scale);
    const yRef = new Float64Array(rows), dsRef = new Float64Array(rows);
    for (let r = 0; r < rows / time; r++) {
      const o = r * time, keys = (r % time) + 1;
      let max = -Infinity, sum = 0, dot = 0;
      for (let j = 0; j < keys; j++) max = Math.max(max, scale * s[o + j]!);
      for (let j = 0; j < keys; j++) sum += Math.exp(scale * s[o + j]! - max);
      for (let j = 0; j < keys; j++) { yRef[o + j] = Math.exp(scale * s[o + j]! - max) / sum; dot += dy[o + j]! * yRef[o + j]!; }
      for (let j = 0; j < keys; j++) dsRef[o + j] = scale * yRef[o + j]! * (dy[o + j]! - dot);
      for (let j = keys; j < time; j++) assert.ok(y[o + j] === 0 && ds[o + j] === 0, `row ${r}: key ${j} after the query is not 0`);
    }
    assertNear(y, yRef, 1e-6, "causalSoftmax");
    assertNear(ds, dsRef, 1e-6, "causalSoftmaxGrad");
  });
}

for (const width of [128, 130]) {
  test(`layerNorm and its gradient (dx, dgain, dbias) over rows of ${width} match float64`, () => {
    const vector = theAddon();
    const rows = 37, n = rows * width, epsilon = 1e-5;
    const x = sequence(n, 3).map((v, i) => 3 * v + (i % 5)), dy = sequence(n, 4), gain = sequence(width, 5), bias = sequence(width, 6);
    const y = new Float32Array(n), dx = new Float32Array(n), dgain = new Float32Array(width).fill(9), dbias = new Float32Array(width).fill(9);
    vector.layerNorm(x, gain, bias, y, epsilon);
    vector.layerNormGrad(dy, x, gain, dx, dgain, dbias, epsilon);
    const yRef = new Float64Array(n), dxRef = new Float64Array(n), dgainRef = new Float64Array(width), dbiasRef = new Float64Array(width);
    for (let r = 0; r < rows; r++) {
      const o = r * width;
      let mean = 0, variance = 0, meanG = 0, meanGX = 0;
      for (let c = 0; c < width; c++) mean += x[o + c]! / width;
      for (let c = 0; c < width; c++) variance += (x[o + c]! - mean) ** 2 / width;
      const rstd = 1 / Math.sqrt(variance + epsilon);
      for (let c = 0; c < width; c++) {
        const xhat = (x[o + c]! - mean) * rstd, g = dy[o + c]! * gain[c]!;
        yRef[o + c] = xhat * gain[c]! + bias[c]!;
        meanG += g / width; meanGX += (g * xhat) / width;
        dgainRef[c] += dy[o + c]! * xhat; dbiasRef[c] += dy[o + c]!;
      }
      for (let c = 0; c < width; c++) dxRef[o + c] = rstd * (dy[o + c]! * gain[c]! - meanG - (x[o + c]! - mean) * rstd * meanGX);
    }
    assertNear(y, yRef, 1e-5, "layerNorm");
    assertNear(dx, dxRef, 1e-5, "layerNormGrad dx");
    assertNear(dgain, dgainRef, 1e-5, "layerNormGrad dgain (written over the 9s, not added)");
    assertNear(dbias, dbiasRef, 1e-5, "layerNormGrad dbias");
  });
}

test("reluGradSum: dz is dy where relu's output is positive, dbias its column sums, written over what was there", () => {
  const vector = theAddon();
  for (const [rows, columns] of [[256, 512], [7, 10]] as const) {
    const dy = sequence(rows * columns, 9), y = sequence(rows * columns, 10).map((v) => Math.max(v, 0));
    const dz = new Float32Array(rows * columns).fill(9), dbias = new Float32Array(columns).fill(9), expected = new Float64Array(columns);
    vector.reluGradSum(dy, y, dz, dbias);
    for (let i = 0; i < dy.length; i++) {
      assert.equal(dz[i], y[i]! > 0 ? dy[i] : 0, `${rows}x${columns}: dz[${i}]`);
      expected[i % columns] += dz[i]!;
    }
    assertNear(dbias, expected, 1e-5 * rows, `dbias ${rows}x${columns}`);
  }
});

test("add and columnSum match float64, for lengths off the vector width", () => {
  const vector = theAddon();
  for (const [rows, columns] of [[768, 128], [5, 13], [1, 1]] as const) {
    const a = sequence(rows * columns, 7), b = sequence(rows * columns, 8), out = new Float32Array(rows * columns);
    vector.add(a, b, out);
    assertNear(out, Float64Array.from(a, (v, i) => v + b[i]!), 1e-7, `add ${rows}x${columns}`);
    const sums = new Float32Array(columns).fill(9), expected = new Float64Array(columns);
    vector.columnSum(a, sums);
    for (let i = 0; i < a.length; i++) expected[i % columns] += a[i]!;
    assertNear(sums, expected, 1e-5 * rows, `columnSum ${rows}x${columns}`);
  }
});

test("addRows: the bias added to every row in place, then relu where asked (NaN stays NaN), for widths off the vector width", () => {
  const vector = theAddon();
  for (const [rows, columns] of [[256, 512], [7, 10], [3, 1]] as const) {
    for (const relu of [false, true]) {
      const x = sequence(rows * columns, 11), bias = sequence(columns, 12);
      x[0] = NaN;
      const before = x.slice();
      vector.addRows(x, bias, relu);
      for (let i = 0; i < x.length; i++) {
        const sum = Math.fround(before[i]! + bias[i % columns]!);
        const expected = relu && sum < 0 ? 0 : sum;
        if (i === 0) assert.ok(Number.isNaN(x[0]), `${rows}x${columns}, relu ${relu}: NaN stays NaN, got ${x[0]}`);
        else assert.equal(x[i], expected, `${rows}x${columns}, relu ${relu}: x[${i}]`);
      }
    }
  }
});

test("bad arguments are refused, naming the call and the argument", () => {
  const vector = theAddon();
  const a = new Float32Array(8);
  assert.throws(() => vector.gelu(a, a, new Float32Array(7)), /gelu\(x, y, s\): s has 7 floats where x needs 8/);
  assert.throws(() => vector.geluGrad(a, new Float64Array(8) as never, a, a), /geluGrad\(dy, x, s, dx\): x must be a Float32Array/);
  assert.throws(() => (vector.gelu as (...args: unknown[]) => void)(a, a), /gelu\(x, y, s\) takes 3 arguments, got 2/);
  assert.throws(() => vector.causalSoftmax(a, a, 3, 1), /causalSoftmax\(scores, y, time, scale\): time must be an integer t >= 1 with t \* t dividing the length 8, got 3/);
  assert.throws(() => vector.causalSoftmax(a, a, 2, "x" as never), /scale must be a number/);
  assert.throws(() => vector.layerNorm(a, new Float32Array(3), new Float32Array(3), a, 1e-5), /layerNorm\(x, gain, bias, y, epsilon\): gain's length 3 does not divide x's 8/);
  assert.throws(() => vector.layerNormGrad(a, a, new Float32Array(4), a, new Float32Array(4), new Float32Array(2), 1e-5), /dbias has 2 floats where gain needs 4/);
  assert.throws(() => vector.columnSum(a, new Float32Array(3)), /columnSum\(x, out\): out's length 3 does not divide x's 8/);
  assert.throws(() => vector.add(a, a, new Float32Array(9)), /add\(a, b, out\): out has 9 floats where a needs 8/);
  assert.throws(() => vector.reluGradSum(a, a, a, new Float32Array(3)), /reluGradSum\(dy, y, dz, dbias\): dbias's length 3 does not divide dy's 8/);
  assert.throws(() => vector.addRows(a, new Float32Array(3), true), /addRows\(x, bias, relu\): bias's length 3 does not divide x's 8/);
  assert.throws(() => vector.addRows(a, new Float32Array(4), 1 as never), /addRows\(x, bias, relu\): relu must be a boolean/);
});

test("DISTLAB_CPU_VECTOR: off keeps the WebAssembly loops; any other value is refused with the variable's name", () => {
  assert.equal(openCpuVector({ DISTLAB_CPU_VECTOR: "off" }), undefined);
  assert.throws(() => openCpuVector({ DISTLAB_CPU_VECTOR: "avx512" }), /DISTLAB_CPU_VECTOR must be "off", got "avx512"/);
});


const path = (p: string) => JSON.stringify(require.resolve(p));

// The fused ops and the overridden stock kernels on wasm, each value and gradient against the same
// formula on the cpu backend, at sizes the WebAssembly loops take in SIMD (multiples of 4) and in
// their JavaScript tails; and how many times each native pass ran. Error as compute-fused.test.ts
// measures it: |ours - cpu| / (1 + |cpu|).
const OPS_ON_WASM = `async (require) => {
  const tf = require("@tensorflow/tfjs");
  const { chooseBackend } = require(${path("../../kernel/src/compute/backend-choice")});
  const fused = require(${path("../../kernel/src/compute/fused")});
  const { cpuVector } = require(${path("../../kernel/src/compute/cpu-vector")});
  const calls = {};
  const vector = cpuVector();
  if (vector) for (const name of Object.keys(vector)) { const f = vector[name]; vector[name] = (...a) => { calls[name] = (calls[name] ?? 0) + 1; return f(...a); }; }
  const filled = (shape, seed) => tf.sin(tf.add(tf.mul(tf.range(0, shape.reduce((p, d) => p * d, 1)), 0.37), seed)).reshape(shape);
  const gelu = (x) => tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(${K}, tf.add(x, tf.mul(${C}, tf.pow(x, 3)))))));
  const layerNorm = (x, g, b) => { const { mean, variance } = tf.moments(x, -1, true); return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b); };
  const softmax = (s) => { const t = s.shape[s.shape.length - 1]; return tf.softmax(tf.add(tf.mul(s, 0.3), tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)), -1e9))); };
  // [name, ours, formula, input shapes]: each op's value, and the gradient of sum(op * weights) for every input
  const cases = [
    ["gelu", (x) => fused.gelu(tf, x), gelu, [[40, 33]]], ["gelu", (x) => fused.gelu(tf, x), gelu, [[7, 11]]],
    ["layerNorm", (x, g, b) => fused.layerNorm(tf, x, g, b), layerNorm, [[6, 128], [128], [128]]],
    ["layerNorm", (x, g, b) => fused.layerNorm(tf, x, g, b), layerNorm, [[3, 5, 130], [130], [130]]],
    ["causalSoftmax", (s) => fused.causalSoftmax(tf, s, 0.3), softmax, [[2, 3, 64, 64]]],
    ["causalSoftmax", (s) => fused.causalSoftmax(tf, s, 0.3), softmax, [[2, 3, 70, 70]]],
    ["add", (a, b) => tf.add(a, b), (a, b) => tf.add(a, b), [[30, 17], [30, 17]]],
    ["sum", (x) => tf.sum(x, 0), (x) => tf.sum(x, 0), [[33, 48]]], ["sum", (x) => tf.sum(x, 0), (x) => tf.sum(x, 0), [[9, 7]]],
    // a relu layer: the product's bias and relu in one pass (addRows); its gradient masks dy and sums
    // the bias gradient in one pass (reluGradSum)
    ["linear", (x, w, b) => fused.linear(tf, x, w, b, "relu"), (x, w, b) => tf.relu(tf.add(tf.matMul(x, w), b)), [[12, 6], [6, 8], [8]]],
  ];
  const worst = {};
  for (const [name, ours, formula, shapes] of cases) {
    const run = (f) => tf.tidy(() => {
      const inputs = shapes.map((shape, i) => tf.mul(filled(shape, i), name === "causalSoftmax" ? 10 : 3));
      const weights = filled(f(...inputs).shape, 7);
      return [f(...inputs), ...tf.grads((...xs) => tf.sum(tf.mul(f(...xs), weights)))(inputs)].map((t) => t.dataSync());
    });
    await tf.setBackend("cpu");
    const expected = run(formula);
    await chooseBackend(tf, "wasm");
    run(ours).forEach((values, o) => values.forEach((v, i) => { const e = expected[o][i]; worst[name] = Math.max(worst[name] ?? 0, Math.abs(v - e) / (1 + Math.abs(e))); }));
  }
  return { calls, worst, device: (await chooseBackend(tf, "wasm")).device };
}`;

test("on wasm the fused ops, Add and the leading-axes Sum run the native passes, and with DISTLAB_CPU_VECTOR=off the WebAssembly loops, each matching the formula on cpu", async () => {
  type Result = { calls: Record<string, number>; worst: Record<string, number>; device: string };
  const native = (await inWorker(OPS_ON_WASM)) as Result;
  for (const name of ["gelu", "geluGrad", "layerNorm", "layerNormGrad", "causalSoftmax", "causalSoftmaxGrad", "add", "columnSum", "reluGradSum", "addRows"]) {
    assert.ok((native.calls[name] ?? 0) > 0, `the native ${name} never ran: ${JSON.stringify(native.calls)}`);
  }
  for (const [name, error] of Object.entries(native.worst)) assert.ok(error < 2e-5, `native ${name}: error ${error}`);
  assert.equal(Object.keys(native.worst).length, 6);
  assert.match(native.device, /, vector passes (avx512f|avx2|baseline)$/);
  const off = (await inWorker(OPS_ON_WASM, { DISTLAB_CPU_VECTOR: "off" })) as Result;
  assert.deepEqual(off.calls, {});
  for (const [name, error] of Object.entries(off.worst)) assert.ok(error < 2e-5, `WebAssembly loops, ${name}: error ${error}`);
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
  assert.match(device, /vector passes failing: DISTLAB_CPU_VECTOR must be "off", got "yes"/);
  assert.match(error, /DISTLAB_CPU_VECTOR must be "off", got "yes"/);
});
