// distlab's fused ops (kernel/src/compute/fused): on backends without
// fused kernels (cpu) they are the stock-op formulas; the analytic
// gradients that the kernels implement (the *Reference backward functions,
// written in stock ops) must match TF.js's own gradient of the formula on
// every backend here. On wasm (always loaded) and webgpu (where it loads)
// the fused kernels themselves are held against cpu: on wasm both their
// SIMD loops (row widths that are multiples of 4) and their JavaScript
// loops (other widths). The WGSL was also checked with Mesa's lavapipe and
// on an H100/H200 (bench/gpu/webgpu-bench.ts prints the diffs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuBlas } from "../../kernel/src/compute/cpu-blas";
import { causalAttention, linear, stockCausalAttention, softmaxCrossEntropy, stockSoftmaxCrossEntropy, causalSoftmax, causalSoftmaxReference, gelu, geluReference, layerNorm, layerNormReference } from "../../kernel/src/compute/fused";
import { leadingAxes } from "../../kernel/src/compute/webgpu/leading-sum";
import { hasFusedKernel } from "../../kernel/src/compute/fused/kernels";
import { WASM_OVERRIDES } from "../../kernel/src/compute/wasm/overrides";
import { ROWS_MAX_TIME, webGpuAttentionForm } from "../../kernel/src/compute/fused/causal-attention";
import { FUSED_KERNELS } from "../../kernel/src/compute/webgpu/overrides";
import { backendsUnderTest, maxRelativeError, runOn, tf, values } from "./compute-backends";

const TOLERANCE = 2e-5;
type Tf = typeof import("@tensorflow/tfjs");
const tfm = tf as unknown as Tf;

async function agree(what: string, compute: () => tf.Tensor[], against: () => tf.Tensor[]): Promise<void> {
  for (const backend of ["cpu", ...(await backendsUnderTest())]) {
    const ours = await runOn(backend, compute);
    const expected = await runOn("cpu", against);
    assert.equal(ours.length, expected.length);
    ours.forEach((result, i) => {
      const error = maxRelativeError(result, expected[i]!);
      assert.ok(error < TOLERANCE, `${what} on ${backend}, output ${i}: error ${error}`);
    });
  }
  await tf.setBackend("cpu");
}

/** TF.js's gradient of f at inputs, weighted by dy (so every output element matters). */
function gradsOf(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  return tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), dy)))(inputs);
}

// Shapes off the GPU kernels' thread counts (64 per row): 130 channels, 70 keys (and on wasm off the
// SIMD loops' 4 lanes: the JavaScript loops); then the widths the SIMD loops take (128 channels, 64 keys).
const ln = (shape: number[]) => () => ({ x: values(shape, 1).mul(3), gain: values(shape.slice(-1), 2), bias: values(shape.slice(-1), 3), dy: values(shape, 4) });

for (const shape of [[3, 5, 130], [7, 128]]) {
  test(`layer norm over [${shape}]: the op, and the kernels' analytic gradient (dx, dgain, dbias), match TF.js's gradient of the formula`, async () => {
    const inputs = ln(shape);
    const formula = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
    };
    const expected = () => { const { x, gain, bias, dy } = inputs(); return [formula(x, gain, bias), ...gradsOf(formula, [x, gain, bias], dy)]; };
    await agree("layerNorm op", () => { const { x, gain, bias, dy } = inputs(); return [layerNorm(tfm, x, gain, bias), ...gradsOf((a, g, b) => layerNorm(tfm, a, g, b), [x, gain, bias], dy)]; }, expected);
    await agree("layerNormReference", () => { const { x, gain, bias, dy } = inputs(); return [layerNormReference.forward(tfm, x, gain, bias), ...layerNormReference.backward(tfm, dy, x, gain)]; }, expected);
  });
}

for (const shape of [[40, 33], [7, 11]]) {
  test(`GELU over [${shape}]: the op, and the kernel's analytic gradient, match TF.js's gradient of the tanh formula (|x| up to 6)`, async () => {
    const formula = (x: tf.Tensor) => tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
    const inputs = () => ({ x: values(shape, 5).mul(6), dy: values(shape, 6) });
    const expected = () => { const { x, dy } = inputs(); return [formula(x), ...gradsOf(formula, [x], dy)]; };
    await agree("gelu op", () => { const { x, dy } = inputs(); return [gelu(tfm, x), ...gradsOf((a) => gelu(tfm, a), [x], dy)]; }, expected);
    await agree("geluReference", () => { const { x, dy } = inputs(); return [geluReference.forward(tfm, x), geluReference.backward(tfm, dy, x)]; }, expected);
  });
}

for (const time of [70, 64]) {
  test(`causal softmax over ${time} keys: future keys get weight 0, and the kernel's analytic gradient matches TF.js's`, async () => {
    const scale = 0.3;
    const inputs = () => ({ s: values([2, 3, time, time], 7).mul(10), dy: values([2, 3, time, time], 8) });
    const formula = (s: tf.Tensor) => tf.softmax(tf.add(tf.mul(s, scale), tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([time, time]), -1, 0)), -1e9)));
    const expected = () => { const { s, dy } = inputs(); return [formula(s), ...gradsOf(formula, [s], dy)]; };
    await agree("causalSoftmax op", () => { const { s, dy } = inputs(); return [causalSoftmax(tfm, s, scale), ...gradsOf((a) => causalSoftmax(tfm, a, scale), [s], dy)]; }, expected);
    await agree("causalSoftmaxReference", () => { const { s, dy } = inputs(); const y = causalSoftmaxReference.forward(tfm, s, scale); return [y, causalSoftmaxReference.backward(tfm, dy, y, scale)]; }, expected);
  });
}

test("causal softmax: exactly zero weight on future keys, on every backend", async () => {
  for (const backend of ["cpu", ...(await backendsUnderTest())]) {
    await tf.setBackend(backend);
    for (const time of [4, 5]) {
      const weights = tf.tidy(() => causalSoftmax(tfm, values([1, 1, time, time], 9), 1).arraySync() as number[][][][]);
      assert.deepEqual(weights[0]![0]!.map((row) => row.map((w) => (w === 0 ? 0 : 1))), Array.from({ length: time }, (_, i) => Array.from({ length: time }, (_, j) => (j <= i ? 1 : 0))), `${backend}, ${time} keys`);
    }
  }
  await tf.setBackend("cpu");
  assert.throws(() => causalSoftmax(tfm, tf.zeros([2, 3, 4]), 1), /must be \[\.\.\., T, T\]/);
});

/** Causal attention written out in loops: qkv [batch * time, 3C] -> [batch * time, C]. */
function attentionByHand(qkv: number[][], time: number, heads: number): number[][] {
  const width = qkv[0]!.length / 3, hs = width / heads;
  return qkv.map((_, row) => {
    const b = Math.floor(row / time), i = row % time;
    const out: number[] = [];
    for (let h = 0; h < heads; h++) {
      const col = (part: number, d: number) => part * width + h * hs + d;
      const scores = Array.from({ length: i + 1 }, (_, j) => qkv[row]!.reduce((sum, _v, d) => (d < hs ? sum + qkv[row]![col(0, d)]! * qkv[b * time + j]![col(1, d)]! : sum), 0) / Math.sqrt(hs));
      const top = Math.max(...scores);
      const weights = scores.map((s) => Math.exp(s - top));
      const total = weights.reduce((a, w) => a + w, 0);
      for (let d = 0; d < hs; d++) out.push(weights.reduce((sum, w, j) => sum + (w / total) * qkv[b * time + j]![col(2, d)]!, 0));
    }
    return out;
  });
}

// batch 2 of 5 positions, 2 heads of 3 channels; batch 3 of 8, 2 heads of 4; batch 2 of 32, 3 heads of 8 (wasm with a BLAS:
// the native causal softmax's rows of any length, then its whole blocks of 16 keys). Without a BLAS, wasm's head-layout
// form: compute-cpu-blas.test.ts.
for (const { batch, time, heads, headSize } of [{ batch: 2, time: 5, heads: 2, headSize: 3 }, { batch: 3, time: 8, heads: 2, headSize: 4 }, { batch: 2, time: 32, heads: 3, headSize: 8 }]) {
  test(`causal attention (${batch}x${time} positions, ${heads} heads of ${headSize}): heads side by side, each a causal softmax of q k^T / sqrt(hs) times v; gradients agree across backends`, async () => {
    const shape = { time, heads };
    const width = heads * headSize;
    const qkv = () => values([batch * time, 3 * width], 11).mul(2);
    const expected = attentionByHand(tf.tidy(() => qkv().arraySync() as number[][]), time, heads);
    for (const backend of ["cpu", ...(await backendsUnderTest())]) {
      await tf.setBackend(backend);
      const ours = tf.tidy(() => causalAttention(tfm, qkv(), shape).arraySync() as number[][]);
      ours.forEach((row, r) => row.forEach((v, c) => assert.ok(Math.abs(v - expected[r]![c]!) < 1e-5, `${backend} row ${r} column ${c}: ${v} vs ${expected[r]![c]}`)));
    }
    await tf.setBackend("cpu");
    const dy = () => values([batch * time, width], 12);
    const run = () => { const x = qkv(); return [causalAttention(tfm, x, shape), ...gradsOf((a) => causalAttention(tfm, a, shape), [x], dy())]; };
    const stock = () => { const x = qkv(); return [stockCausalAttention(tfm, x, shape), ...gradsOf((a) => stockCausalAttention(tfm, a, shape), [x], dy())]; };
    await agree("causalAttention", run, stock);
    assert.throws(() => causalAttention(tfm, tf.zeros([10, 16]), { time: 5, heads: 2 }), /3 \* heads \* headSize/);
    assert.throws(() => causalAttention(tfm, tf.zeros([12, 18]), { time: 5, heads: 2 }), /batch \* time/);
  });
}

test("cross-entropy: mean of logsumexp - the label's logit, as tf.losses.softmaxCrossEntropy with one-hot labels; gradients agree", async () => {
  const inputs = () => ({ logits: values([4, 6, 7], 13).mul(5), labels: tf.tensor2d([[0, 1, 2, 3, 4, 5], [6, 0, 1, 2, 3, 4], [5, 6, 0, 1, 2, 3], [4, 5, 6, 0, 1, 2]], [4, 6], "int32") });
  const expected = () => {
    const { logits, labels } = inputs();
    const loss = (x: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.reshape(labels, [-1]), 7), tf.reshape(x, [-1, 7]));
    return [loss(logits), ...tf.grads(loss)([logits])];
  };
  await agree("softmaxCrossEntropy", () => { const { logits, labels } = inputs(); const f = (x: tf.Tensor) => softmaxCrossEntropy(tfm, x, labels); return [f(logits), ...tf.grads(f)([logits])]; }, expected);
  // A label out of range is an all-zero one-hot row: it adds 0 to the loss (still counted in the mean) and, as
  // TF.js differentiates the stock formula, gets no gradient (tf.losses' own gradient would give it softmax / rows).
  const outOfRange = () => ({ logits: values([5, 7], 14).mul(5), labels: tf.tensor1d([0, 7, 3, -1, 6], "int32") });
  await agree("softmaxCrossEntropy, labels out of range", () => { const { logits, labels } = outOfRange(); const f = (x: tf.Tensor) => softmaxCrossEntropy(tfm, x, labels); return [f(logits), ...tf.grads(f)([logits])]; }, () => {
    const { logits, labels } = outOfRange();
    const loss = (x: tf.Tensor) => stockSoftmaxCrossEntropy(tfm, x, labels);
    return [loss(logits), ...tf.grads(loss)([logits])];
  });
  // A label whose probability underflows float32 (logit 150 below the row's largest): the loss stays finite and exact.
  const farApart = () => ({ logits: tf.tensor2d([[100, 0, -50, 3], [1, 2, 3, 4]]), labels: tf.tensor1d([2, 0], "int32") });
  await agree("softmaxCrossEntropy, an underflowing probability", () => { const { logits, labels } = farApart(); const f = (x: tf.Tensor) => softmaxCrossEntropy(tfm, x, labels); return [f(logits), ...tf.grads(f)([logits])]; }, () => {
    const { logits, labels } = farApart();
    const loss = (x: tf.Tensor) => stockSoftmaxCrossEntropy(tfm, x, labels);
    return [loss(logits), ...tf.grads(loss)([logits])];
  });
  assert.throws(() => tf.tidy(() => softmaxCrossEntropy(tfm, tf.zeros([3, 4]), tf.zeros([2], "int32"))), /./, "labels must match the rows");
});

test("linear: x w + bias and its three gradients, as matMul then add, on every backend (one DistlabLinear product on wasm with a BLAS)", async () => {
  const inputs = () => [values([9, 13], 21), values([13, 6], 22), values([6], 23)];
  const dy = () => values([9, 6], 24);
  await agree("linear", () => { const [x, w, b] = inputs(); return [linear(tfm, x!, w!, b!), ...gradsOf((x, w, b) => linear(tfm, x!, w!, b!), [x!, w!, b!], dy())]; }, () => {
    const [x, w, b] = inputs();
    const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.add(tf.matMul(x, w), b);
    return [f(x!, w!, b!), ...gradsOf(f, [x!, w!, b!], dy())];
  });
  // relu: 9 x 8 results (the SIMD bias-and-relu pass), 9 x 6 and 9 x 7 (the bias inside the product, relu in JavaScript;
  // the gradient's SIMD prefix and JavaScript tail), some exactly 0 before relu
  for (const out of [8, 6, 7]) {
    const reluInputs = () => [values([9, 13], 31), values([13, out], 32), tf.concat([tf.zeros([1]), values([out - 1], 33)])];
    const reluDy = () => values([9, out], 34);
    await agree(`linear with relu, ${out} columns`, () => { const [x, w, b] = reluInputs(); return [linear(tfm, x!, w!, b!, "relu"), ...gradsOf((x, w, b) => linear(tfm, x!, w!, b!, "relu"), [x!, w!, b!], reluDy())]; }, () => {
      const [x, w, b] = reluInputs();
      const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.relu(tf.add(tf.matMul(x, w), b));
      return [f(x!, w!, b!), ...gradsOf(f, [x!, w!, b!], reluDy())];
    });
  }
  assert.throws(() => tf.tidy(() => linear(tfm, tf.zeros([2, 3]), tf.zeros([4, 5]), tf.zeros([5]))), /./, "x's columns must match w's rows");
  assert.throws(() => tf.tidy(() => linear(tfm, tf.zeros([2, 3]), tf.zeros([3, 5]), tf.zeros([5]), "gelu" as never)), /linear: activation must be "linear" or "relu", got "gelu"/);
});

test("linear on wasm with a BLAS: the forward pass is one product with the bias in it, and a data input's gradient is never computed", async () => {
  await backendsUnderTest();
  await tf.setBackend("wasm");
  const blas = cpuBlas();
  assert.ok(blas, "no BLAS open on the wasm backend (npm test's set-up installs oneDNN and OpenBLAS)");
  const x = values([32, 20], 25), w = tf.variable(values([20, 8], 26)), b = tf.variable(values([8], 27));
  let products = blas.products;
  const y = linear(tfm, x, w, b);
  assert.equal(blas.products - products, 1, "forward: one product, the bias added inside it");
  y.dispose();
  products = blas.products;
  const { grads, value } = tf.variableGrads(() => tf.sum(linear(tfm, x, w, b)) as tf.Scalar, [w, b]);
  // forward, then w's gradient only: x is data (tf.fused.matMul's gradient would compute x's too: 3)
  assert.equal(blas.products - products, 2, "a product for x's gradient was computed");
  const expected = tf.tidy(() => tf.matMul(x, tf.onesLike(tf.matMul(x, w)), true, false));
  assert.ok(maxRelativeError({ shape: grads[w.name]!.shape, values: grads[w.name]!.dataSync() as Float32Array }, { shape: expected.shape, values: expected.dataSync() as Float32Array }) < TOLERANCE);
  tf.dispose([x, w, b, value, expected, ...Object.values(grads)]);
  await tf.setBackend("cpu");
});

test("the Sum override takes sums over leading axes only (a column sum); everything else stays TF.js's", () => {
  assert.equal(leadingAxes(0, 2), 1, "a bias gradient: [rows, n] summed over rows");
  assert.equal(leadingAxes([1, 0], 3), 2);
  assert.equal(leadingAxes(-3, 3), 1);
  assert.equal(leadingAxes(-1, 2), 0, "the innermost axis: TF.js's reduce");
  assert.equal(leadingAxes([0, 2], 3), 0, "not contiguous from 0");
  assert.equal(leadingAxes([0, 1], 2), 0, "every axis: a full reduction");
  assert.equal(leadingAxes(null, 2), 0);
});

test("the fused kernels: one set of names for webgpu and wasm, registered for those two only", async () => {
  const configs = FUSED_KERNELS.flatMap((kernels) => kernels(() => 64));
  const names = ["DistlabLayerNorm", "DistlabLayerNormGrad", "DistlabGelu", "DistlabGeluGrad", "DistlabCausalSoftmax", "DistlabCausalSoftmaxGrad", "DistlabCausalAttention", "DistlabCausalAttentionGrad", "DistlabSoftmaxCrossEntropy", "DistlabSoftmaxCrossEntropyGrad"];
  assert.deepEqual(configs.map((c) => c.kernelName), names);
  assert.ok(configs.every((c) => c.backendName === "webgpu"));
  // wasm: every one (its whole-attention pair runs on the BLAS; without one the op takes the head-layout kernels).
  const wasmNames = WASM_OVERRIDES.map((o) => o.kernelName).filter((n) => n.startsWith("Distlab"));
  assert.deepEqual(wasmNames.filter((n) => names.includes(n)).sort(), [...names].sort());
  assert.deepEqual(wasmNames.filter((n) => !names.includes(n)).sort(), ["DistlabFromHeads", "DistlabLinear", "DistlabReluGrad", "DistlabToHeads"]);
  for (const backend of ["cpu", ...(await backendsUnderTest()).filter((b) => b !== "webgpu")]) {
    await tf.setBackend(backend);
    const x = tf.zeros([2]);
    for (const name of wasmNames) assert.equal(hasFusedKernel(tfm, name, [x]), backend === "wasm", `${name} on ${backend}`);
    if (backend === "wasm") assert.equal(hasFusedKernel(tfm, "DistlabLayerNorm", [tf.zeros([2], "int32")]), false, "float32 inputs only");
    x.dispose();
  }
  await tf.setBackend("cpu");
});

test("webgpu's attention form: per-query-row kernels up to ROWS_MAX_TIME, matMuls past it, or as DISTLAB_WEBGPU_ATTENTION says", () => {
  assert.equal(webGpuAttentionForm(ROWS_MAX_TIME, {}), "rows");
  assert.equal(webGpuAttentionForm(ROWS_MAX_TIME + 1, {}), "matmul");
  assert.equal(webGpuAttentionForm(1024, { DISTLAB_WEBGPU_ATTENTION: "rows" }), "rows");
  assert.equal(webGpuAttentionForm(64, { DISTLAB_WEBGPU_ATTENTION: "matmul" }), "matmul");
  assert.throws(() => webGpuAttentionForm(64, { DISTLAB_WEBGPU_ATTENTION: "flash" }), /DISTLAB_WEBGPU_ATTENTION must be auto, rows or matmul, got flash/);
});
