// Numerical tests of distlab's kernel overrides: each computation runs on
// every backend available here (wasm with the overrides at least) and on the
// `cpu` backend, and the results must agree to float32 accuracy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WASM_OVERRIDES, installWasmOverrides } from "../../kernel/src/compute/wasm/overrides";
import { simdOf } from "../../kernel/src/compute/wasm/tensor-info";
import { backendsUnderTest, maxRelativeError, runOn, tf, values } from "./compute-backends";

const TOLERANCE = 1e-4;

async function agreesWithCpu(what: string, compute: () => tf.Tensor[]): Promise<void> {
  const reference = await runOn("cpu", compute);
  const backends = await backendsUnderTest();
  assert.ok(backends.includes("wasm"), "the wasm backend must load on every machine distlab supports");
  for (const backend of backends) {
    const results = await runOn(backend, compute);
    results.forEach((result, i) => {
      const error = maxRelativeError(result, reference[i]!);
      assert.ok(error < TOLERANCE, `${what} on ${backend}, output ${i}: error ${error} against cpu`);
    });
  }
}

test("the wasm overrides are installed once, and each replaces its kernel in the registry", async () => {
  await backendsUnderTest();
  assert.deepEqual(installWasmOverrides(tf), [], "a second install must be a no-op");
  for (const { kernelName } of WASM_OVERRIDES) {
    const config = tf.getKernel(kernelName, "wasm");
    assert.ok(config, `${kernelName} registered for wasm`);
    assert.equal((config as unknown as Record<symbol, unknown>)[Symbol.for("distlab.compute.override")], true, `${kernelName} is distlab's`);
  }
});

test("DISTLAB_WASM_FUSED_OPS=0 installs the replacements but none of the new Distlab* kernels", () => {
  const registry = new Map<string, tf.KernelConfig>();
  for (const name of ["BatchMatMul", "_FusedMatMul", "Pow", "Identity", "Tanh", "Cast", "Sum", "GatherV2", "Reshape", "Transpose"]) registry.set(name, { kernelName: name, backendName: "wasm", kernelFunc: () => [] as never });
  const fake = {
    getKernel: (name: string, backend: string) => (backend === "wasm" ? registry.get(name) : undefined),
    registerKernel: (config: tf.KernelConfig) => void registry.set(config.kernelName, config),
    unregisterKernel: (name: string) => void registry.delete(name),
  };
  const installed = installWasmOverrides(fake as never, { DISTLAB_WASM_FUSED_OPS: "0" });
  assert.deepEqual(installed, WASM_OVERRIDES.map((o) => o.kernelName).filter((n) => !n.startsWith("Distlab")));
  assert.ok(![...registry.keys()].some((n) => n.startsWith("Distlab")));
  assert.deepEqual(installWasmOverrides(fake as never, { DISTLAB_WASM_FUSED_OPS: "0" }), [], "installed once");
});

for (const [transposeA, transposeB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
  test(`matMul 37x53 . 53x29 with transposeA=${transposeA} transposeB=${transposeB}`, async () => {
    await agreesWithCpu("matMul", () => {
      const a = values(transposeA ? [53, 37] : [37, 53], 1);
      const b = values(transposeB ? [29, 53] : [53, 29], 2);
      return [tf.matMul(a, b, transposeA, transposeB)];
    });
  });
}

test("batched matMul: equal batches, broadcast weights, broadcast left operand, with transposes", async () => {
  await agreesWithCpu("batched matMul", () => [
    tf.matMul(values([3, 2, 5, 7], 3), values([3, 2, 4, 7], 4), false, true), // attention scores: q k^T
    tf.matMul(values([3, 2, 7, 5], 5), values([3, 2, 7, 4], 6), true, false),
    tf.matMul(values([4, 6, 7], 7), values([7, 3], 8)), // [batch, rows, k] . shared [k, n]
    tf.matMul(values([6, 7], 9), values([4, 3, 7], 10), false, true), // shared left operand
    tf.matMul(values([1, 6, 7], 11), values([5, 7, 3], 12)),
  ]);
});

test("fused matMul with bias and relu, transposed operands", async () => {
  await agreesWithCpu("fused matMul", () => [
    tf.fused.matMul({ a: values([9, 6], 13), b: values([11, 9], 14), transposeA: true, transposeB: true, bias: values([11], 15), activation: "relu" }),
    tf.fused.matMul({ a: values([2, 6, 9], 16), b: values([9, 5], 17), bias: values([5], 18), activation: "linear" }),
    // columns a multiple of 4: the product alone, then the SIMD bias-and-relu pass over every row (batches included)
    tf.fused.matMul({ a: values([9, 6], 19), b: values([12, 9], 20), transposeA: true, transposeB: true, bias: values([12], 21), activation: "relu" }),
    tf.fused.matMul({ a: values([2, 6, 9], 22), b: values([9, 8], 23), bias: values([8], 24), activation: "linear" }),
  ]);
});

test("gather gradient (UnsortedSegmentSum): repeated and unused rows", async () => {
  await agreesWithCpu("gather gradient", () => {
    const table = values([10, 4], 19);
    const indices = tf.tensor1d([3, 1, 3, 3, 0, 9], "int32"); // row 3 three times; rows 2, 4..8 unused
    const upstream = values([6, 4], 20);
    const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, indices), upstream)))(table);
    const direct = tf.unsortedSegmentSum(values([6, 2, 3], 21), tf.tensor1d([4, 0, 4, 2, 1, 1], "int32"), 5);
    return [grad, direct];
  });
});

test("MLP gradients (784-64-10, ReLU, softmax cross-entropy) agree with cpu", async () => {
  await agreesWithCpu("MLP gradients", () => {
    const x = values([16, 784], 22);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5], "int32"), 10);
    const w1 = values([784, 64], 23), w2 = values([64, 10], 24);
    const loss = (a: tf.Tensor, b: tf.Tensor) => tf.losses.softmaxCrossEntropy(labels, tf.matMul(tf.relu(tf.matMul(x, a)), b));
    return tf.grads(loss)([w1, w2]);
  });
});

test("transposed matMul on wasm runs at the speed of the plain one, not the slow path (12-25x slower)", async () => {
  await tf.setBackend("wasm");
  const a = values([256, 784], 25), at = values([784, 256], 26), b = values([784, 512], 27), bt = values([512, 784], 28);
  const median = (f: () => tf.Tensor) => {
    const times: number[] = [];
    for (let i = 0; i < 7; i++) { const t0 = performance.now(); f().dispose(); times.push(performance.now() - t0); }
    return times.sort((x, y) => x - y)[3]!;
  };
  const plain = median(() => tf.matMul(a, b));
  const transposedA = median(() => tf.matMul(at, b, true, false));
  const transposedB = median(() => tf.matMul(a, bt, false, true));
  tf.dispose([a, at, b, bt]);
  // The stock kernel takes 12-25x the plain time here; 5x leaves room for a loaded machine.
  assert.ok(transposedA < 5 * plain, `transposeA ${transposedA.toFixed(1)} ms vs plain ${plain.toFixed(1)} ms`);
  assert.ok(transposedB < 5 * plain, `transposeB ${transposedB.toFixed(1)} ms vs plain ${plain.toFixed(1)} ms`);
});

test("pow with small integer exponents and its gradient; other exponents unchanged", async () => {
  await agreesWithCpu("pow", () => {
    const x = values([7, 9], 29);
    const positive = tf.add(tf.abs(x), 0.1);
    return [
      tf.pow(x, 2), tf.pow(x, 3), tf.pow(x, 4), tf.pow(x, 1),
      tf.pow(positive, 0.5), tf.pow(positive, tf.tensor1d([2, 3, 1.5, 2, 3, 1, 2, 2, 0.5])), // non-scalar exponent: stock kernel
      tf.grad((t: tf.Tensor) => tf.sum(tf.pow(t, 3)))(x),
    ];
  });
});

test("tanh over small, moderate and saturating inputs, and its gradient", async () => {
  await agreesWithCpu("tanh", () => {
    const x = tf.concat([tf.linspace(-0.02, 0.02, 41), tf.linspace(-12, 12, 97), tf.tensor1d([1e-6, -3e-4, 0.00999, 0.01001])]);
    return [tf.tanh(x), tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tanh(t), tf.linspace(1, 2, 142))))(x)];
  });
});

test("identity (cast to the same dtype, clone) shares the buffer and the values survive the source's disposal", async () => {
  await agreesWithCpu("identity", () => {
    const source = values([5, 3], 30);
    const copy = tf.clone(source);
    const cast = tf.cast(source, "float32");
    source.dispose();
    return [copy, cast];
  });
});

test("sum over leading axes (a column sum; SIMD for multiples of 4 and of 16 columns), keepDims, and the other sums unchanged", async () => {
  await agreesWithCpu("sum", () => {
    const x = values([37, 12], 31), y = values([3, 5, 7], 32), z = values([4, 6, 8], 33), w = values([5, 3, 48], 39);
    return [
      tf.sum(x, 0), tf.sum(x, 0, true), tf.sum(y, 0), tf.sum(y, [0, 1]), tf.sum(y, [1, 0], true), tf.sum(z, [0, 1]), tf.sum(z, -3),
      tf.sum(w, 0), tf.sum(w, [0, 1], true),
      tf.sum(x, 1), tf.sum(y, [0, 2]), tf.sum(y), tf.sum(tf.tensor2d([[1, 2], [3, 4]], [2, 2], "int32"), 0),
      tf.grad((b: tf.Tensor) => tf.sum(tf.mul(tf.add(x, b), x)))(values([12], 34)), // a bias gradient
    ];
  });
});

test("cast to the same dtype shares the buffer; real conversions still convert", async () => {
  await agreesWithCpu("cast", () => {
    const source = values([4, 5], 35);
    const same = tf.cast(source, "float32");
    const toInt = tf.cast(tf.mul(source, 10), "int32");
    const back = tf.cast(toInt, "float32");
    source.dispose();
    return [same, toInt, back];
  });
});

test("gather along axis 0 (embedding rows), int32 tables, other axes; out-of-range indices still rejected", async () => {
  await agreesWithCpu("gather", () => {
    const table = values([9, 6], 36);
    const ids = tf.tensor2d([[3, 0, 8], [3, 3, 1]], [2, 3], "int32");
    return [tf.gather(table, ids), tf.gather(tf.tensor2d([[1, 2], [3, 4], [5, 6]], [3, 2], "int32"), tf.tensor1d([2, 0], "int32")), tf.gather(table, tf.tensor1d([5, 1], "int32"), 1), tf.gather(values([4], 37), tf.tensor1d([3, 3, 0], "int32"))];
  });
  await tf.setBackend("wasm");
  assert.throws(() => tf.tidy(() => tf.gather(values([4, 2], 38), tf.tensor1d([1, 4], "int32"))), /not in \[0, 3\]/);
  await tf.setBackend("cpu");
});

test("the fused kernels' SIMD loops run on the wasm backend's heap", async () => {
  await backendsUnderTest();
  await tf.setBackend("wasm");
  assert.ok(simdOf(tf.backend() as never), "simd-kernels.ts compiles and binds to TF.js's memory");
  await tf.setBackend("cpu");
});
