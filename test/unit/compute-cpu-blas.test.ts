// Matrix products through the machine's BLAS (kernel/src/compute/cpu-blas.ts,
// kernel/native/cpu-blas.cc): against a float64 reference and the wasm
// kernel, as the wasm backend's matMul runs them, from several threads at
// once, and every bad setting and argument refused with its name.
// `npm test`'s set-up builds the addon and installs oneDNN and OpenBLAS
// (Debian libdnnl2, libopenblas0), so a missing library fails here rather than skipping.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { inWorker } from "./in-worker";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs";
import { ADDON_PATH, CpuBlas, cpuBlas, openblasMisfit, openCpuBlas } from "../../kernel/src/compute/cpu-blas";
import { chooseBackend } from "../../kernel/src/compute/backend-choice";
import { WasmGemm } from "../../kernel/src/compute/wasm/gemm";
import { assertClose, random, reference } from "./gemm-reference";
import { checkBlasProducts } from "./blas-products-check";

const CPU_BLAS = JSON.stringify(require.resolve("../../kernel/src/compute/cpu-blas"));
const PRODUCTS_CHECK = JSON.stringify(require.resolve("./blas-products-check"));

function theBlas(): CpuBlas {
  const found = openCpuBlas({});
  assert.ok(found instanceof CpuBlas, `no BLAS: ${"missing" in found ? found.missing : ""} (npm test's set-up builds the addon and installs libdnnl2 and libopenblas0)`);
  return found;
}

test("the BLAS opens: oneDNN by default, one thread", () => {
  const blas = theBlas();
  assert.match(blas.library, /^libdnnl\.so\.[23]$/);
  assert.equal(blas.kind, "onednn");
  assert.equal(blas.threads, 1);
  assert.match(blas.config ?? "", /^oneDNN \d/);
});

test("BLAS products: random shapes, transposes, bias and offsets match a float64 reference and the wasm kernel", () => {
  checkBlasProducts(theBlas(), 300);
});

test("either kind of library serves: OpenBLAS (cblas_sgemm) and oneDNN (dnnl_sgemm), each in a process of its own, with its threads read back", () => {
  for (const [library, kind, config] of [["libopenblas.so.0", "cblas", /^OpenBLAS \d/], ["libdnnl.so.2", "onednn", /^oneDNN \d+\.\d+\.\d+ \(OpenMP\)$/]] as const) {
    const script = `const blas = require(${CPU_BLAS}).openCpuBlas(process.env); require(${PRODUCTS_CHECK}).checkBlasProducts(blas, 150);
      const m = 256, k = 784, n = 512, a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
      blas.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: c, offset: 0 }, { m, k, n, transposeA: false, transposeB: true });
      console.log(JSON.stringify({ library: blas.library, kind: blas.kind, config: blas.config, threads: blas.threads, large: [c[0], c[m * n - 1]] }));`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { encoding: "utf8", env: { ...process.env, DISTLAB_CPU_BLAS: library, DISTLAB_CPU_BLAS_THREADS: "2" } });
    assert.equal(run.status, 0, `${library}: ${run.stderr}`);
    const got = JSON.parse(run.stdout.trim().split("\n").pop()!) as { library: string; kind: string; config: string; threads: number; large: number[] };
    assert.equal(got.library, library);
    assert.equal(got.kind, kind, library);
    assert.match(got.config, config, library);
    assert.equal(got.threads, 2, `${library}: the library's own thread count, read back after setting it`);
    assert.deepEqual(got.large, [784 * 0.125, 784 * 0.125], `${library}: a product large enough for the library's threads`);
  }
});

test("a large product (backprop's shapes) matches the wasm kernel", () => {
  const blas = theBlas();
  const wasm = new WasmGemm();
  for (const shape of [
    { m: 256, k: 784, n: 512, transposeA: false, transposeB: false },
    { m: 784, k: 256, n: 512, transposeA: true, transposeB: false },
    { m: 256, k: 512, n: 784, transposeA: false, transposeB: true },
  ]) {
    const a = random(shape.m * shape.k, 3), b = random(shape.k * shape.n, 4);
    const got = new Float32Array(shape.m * shape.n), want = new Float32Array(shape.m * shape.n);
    blas.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: got, offset: 0 }, shape);
    wasm.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: want, offset: 0 }, shape);
    assertClose(got, 0, Float64Array.from(want), shape.k, JSON.stringify(shape));
  }
});

test("tf.matMul on the wasm backend runs its products through the BLAS, with the stock kernel's values", async () => {
  await chooseBackend(tf, "wasm");
  const blas = cpuBlas();
  assert.ok(blas, "cpuBlas() found no BLAS in this thread");
  const before = blas.products;
  const a = tf.tensor2d(random(37 * 53, 5), [37, 53]), b = tf.tensor2d(random(29 * 53, 6), [29, 53]);
  const product = tf.matMul(a, b, false, true);
  const got = product.dataSync() as Float32Array;
  assert.equal(blas.products, before + 1, "the matMul did not reach the BLAS");
  assertClose(got, 0, reference(a.dataSync() as Float32Array, 0, b.dataSync() as Float32Array, 0, { m: 37, k: 53, n: 29, transposeA: false, transposeB: true }), 53, "tf.matMul");
  tf.dispose([a, b, product]);
});



test("DISTLAB_CPU_BLAS=off leaves the products on the wasm kernel and says why", async () => {
  const got = await inWorker(`(require) => { const m = require(${CPU_BLAS}); return [m.cpuBlas() === undefined, m.cpuBlasMissingReason()]; }`, { DISTLAB_CPU_BLAS: "off" });
  assert.deepEqual(got, [true, "DISTLAB_CPU_BLAS=off"]);
});

// Causal attention on wasm: with the BLAS, the native pair (kernel/native/cpu-attention.cc); with DISTLAB_CPU_BLAS=off
// or DISTLAB_CPU_VECTOR=off the head-layout kernels around batched products (JavaScript layout at head size 3, SIMD at 4). Each against the
// stock ops on the same backend, value and gradient; the kernels that ran are read from tf.profile.
const ATTENTION_ON_WASM = `async (require) => {
  const tf = require("@tensorflow/tfjs");
  await require(${JSON.stringify(require.resolve("../../kernel/src/compute/backend-choice"))}).chooseBackend(tf, "wasm");
  const { causalAttention, stockCausalAttention } = require(${JSON.stringify(require.resolve("../../kernel/src/compute/fused"))});
  let worst = 0;
  const kernels = new Set();
  for (const [batch, time, heads, hs] of [[2, 5, 2, 3], [3, 8, 2, 4], [2, 32, 3, 8]]) {
    const n = batch * time * 3 * heads * hs;
    const qkv = tf.mul(tf.sin(tf.range(0, n)), 2).reshape([batch * time, 3 * heads * hs]);
    const dy = tf.cos(tf.range(0, n / 3)).reshape([batch * time, heads * hs]);
    const run = (f) => [f(qkv), tf.grad((x) => tf.sum(tf.mul(f(x), dy)))(qkv)].map((t) => t.dataSync());
    let ours;
    const profile = await tf.profile(() => { ours = run((x) => causalAttention(tf, x, { time, heads })); });
    profile.kernels.forEach((k) => kernels.add(k.name));
    const stock = run((x) => stockCausalAttention(tf, x, { time, heads }));
    ours.forEach((values, o) => values.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - stock[o][i]) / (1 + Math.abs(stock[o][i]))); }));
  }
  return { worst, native: kernels.has("DistlabCausalAttention") && kernels.has("DistlabCausalAttentionGrad"), headLayout: kernels.has("DistlabToHeads") };
}`;

test("causal attention on wasm: the native pair on the BLAS, the head-layout kernels with DISTLAB_CPU_BLAS=off or DISTLAB_CPU_VECTOR=off; all match the stock ops", async () => {
  const withBlas = (await inWorker(ATTENTION_ON_WASM)) as { worst: number; native: boolean; headLayout: boolean };
  assert.deepEqual([withBlas.native, withBlas.headLayout], [true, false]);
  assert.ok(withBlas.worst < 2e-5, `native attention: error ${withBlas.worst}`);
  for (const off of [{ DISTLAB_CPU_BLAS: "off" }, { DISTLAB_CPU_VECTOR: "off" }]) {
    const without = (await inWorker(ATTENTION_ON_WASM, off)) as typeof withBlas;
    assert.deepEqual([without.native, without.headLayout], [false, true], JSON.stringify(off));
    assert.ok(without.worst < 2e-5, `head-layout attention with ${JSON.stringify(off)}: error ${without.worst}`);
  }
});

test("the attention pair refuses shapes that do not fit, naming the argument", () => {
  theBlas();
  const addon = require(ADDON_PATH) as { causalAttention: (...a: unknown[]) => void; causalAttentionGrad: (...a: unknown[]) => void };
  const f = (n: number) => new Float32Array(n);
  // batch 1, time 2, heads 2, hs 2: qkv [2, 12], out [2, 4], probs [1, 2, 2, 2]
  addon.causalAttention(f(24), f(8), f(8), 2, 2, 0.5);
  assert.throws(() => addon.causalAttention(f(24), f(7), f(8), 2, 2, 0.5), /causalAttention\(qkv, out, probs, time, heads, scale\): out has 7 floats where qkv \(a third\) needs 8/);
  assert.throws(() => addon.causalAttention(f(24), f(8), f(6), 2, 2, 0.5), /probs' length 6 is not batch \* heads \* time \* time/);
  assert.throws(() => addon.causalAttention(f(24), f(8), f(8), 2.5, 2, 0.5), /time and heads must be integers >= 1, got 2\.5/);
  assert.throws(() => addon.causalAttention(f(36), f(12), f(16), 2, 2, 0.5), /qkv's length 36 is not 4 rows of 3 \* heads \* headSize/);
  assert.throws(() => addon.causalAttentionGrad(f(24), f(8), f(8), f(23), 2, 2, 0.5), /dqkv has 23 floats where qkv needs 24/);
});

test("bad settings are refused with the variable's name: a library that does not load, a thread count that is not one", () => {
  theBlas(); // this process has oneDNN open (for the last case below)
  // a process opens one library (every thread shares it), so each choice gets a process of its own
  const openIn = (library: string) => {
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", `require(${CPU_BLAS}).openCpuBlas({ DISTLAB_CPU_BLAS: ${JSON.stringify(library)} })`], { encoding: "utf8" });
    assert.notEqual(run.status, 0, `DISTLAB_CPU_BLAS=${library} was accepted`);
    return run.stderr;
  };
  assert.match(openIn("/nonexistent/libblas.so"), /DISTLAB_CPU_BLAS=\/nonexistent\/libblas\.so: cannot load \/nonexistent\/libblas\.so/);
  assert.match(openIn("libc.so.6"), /DISTLAB_CPU_BLAS=libc\.so\.6: libc\.so\.6 has neither cblas_sgemm nor dnnl_sgemm \(not a CBLAS or oneDNN library\)/);
  assert.throws(() => openCpuBlas({ DISTLAB_CPU_BLAS: "libopenblas.so.0" }), /DISTLAB_CPU_BLAS=libopenblas\.so\.0: open\(libopenblas\.so\.0\): this process already uses libdnnl\.so\.[23]/);
  for (const threads of ["0", "-1", "1.5", "two"]) {
    assert.throws(() => openCpuBlas({ DISTLAB_CPU_BLAS_THREADS: threads }), new RegExp(`DISTLAB_CPU_BLAS_THREADS must be an integer >= 1, got "${threads}"`));
  }
  assert.deepEqual(openCpuBlas({}, "/nonexistent/cpu-blas.node"), { missing: "the native addon /nonexistent/cpu-blas.node is not built (npm run setup builds it where g++ and Node's headers are installed)" });
});

test("the addon checks its arguments before it touches memory: short operands, offsets past the end, other arrays", () => {
  theBlas();
  const addon = require(ADDON_PATH) as { sgemm: (...args: unknown[]) => void };
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => addon.sgemm(false, false, 4, 4, 4, f(15), 0, f(16), 0, f(16), 0, 0), /an operand is shorter than its shape/);
  assert.throws(() => addon.sgemm(false, false, 4, 4, 4, f(16), 1, f(16), 0, f(16), 0, 0), /an operand is shorter than its shape/);
  assert.throws(() => addon.sgemm(false, false, 4, 4, 4, f(16), 0, f(16), 0, f(16), 17, 0), /c must be a Float32Array and cOffset within it/);
  assert.throws(() => addon.sgemm(false, false, 4, 4, 4, new Float64Array(16), 0, f(16), 0, f(16), 0, 0), /a must be a Float32Array/);
  assert.throws(() => addon.sgemm(false, false, -1, 4, 4, f(16), 0, f(16), 0, f(16), 0, 0), /m, n and k must be integers >= 0/);
  assert.throws(() => addon.sgemm(false, false, 4, 4), /sgemm takes 12 arguments/);
});

test("four threads multiplying at once each get their own right answers", async () => {
  const body = (seed: number) => `(require) => {
    const { cpuBlas } = require(${CPU_BLAS});
    const blas = cpuBlas();
    if (!blas) throw new Error("no BLAS in the worker");
    const m = 96, k = 200, n = 80, rounds = 40;
    let state = ${seed};
    const rnd = (len) => Float32Array.from({ length: len }, () => { state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648 - 0.5; });
    let worst = 0;
    for (let r = 0; r < rounds; r++) {
      const a = rnd(m * k), b = rnd(k * n), c = new Float32Array(m * n);
      blas.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: c, offset: 0 }, { m, k, n, transposeA: r % 2 === 1, transposeB: r % 3 === 1 });
      for (let i = 0; i < m; i += 7) for (let j = 0; j < n; j += 5) {
        let s = 0;
        for (let kk = 0; kk < k; kk++) s += a[r % 2 === 1 ? kk * m + i : i * k + kk] * b[r % 3 === 1 ? j * k + kk : kk * n + j];
        worst = Math.max(worst, Math.abs(c[i * n + j] - s));
      }
    }
    return worst;
  }`;
  const worst = (await Promise.all([1, 2, 3, 4].map((seed) => inWorker(body(seed))))) as number[];
  for (const [i, error] of worst.entries()) assert.ok(error < 1e-4, `thread ${i}: largest error ${error}`);
});

test("a bad DISTLAB_CPU_BLAS keeps the wasm backend, shows in its device, and fails the first product naming the variable", () => {
  // its own process: the library a process opens is shared by all its threads
  const script = `
    const tf = require("@tensorflow/tfjs");
    require(${JSON.stringify(require.resolve("../../kernel/src/compute/backend-choice"))}).chooseBackend(tf).then((chosen) => {
      let error = "";
      try { tf.matMul(tf.ones([2, 3]), tf.ones([3, 4])).dataSync(); } catch (e) { error = e.message; }
      console.log(JSON.stringify({ backend: chosen.backend, device: chosen.device, error }));
    });`;
  const run = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { encoding: "utf8", env: { ...process.env, DISTLAB_CPU_BLAS: "/nonexistent/libblas.so" }, timeout: 60_000 });
  const result = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as { backend: string; device: string; error: string };
  assert.equal(result.backend, "wasm", run.stderr);
  assert.match(result.device, /matMul failing: DISTLAB_CPU_BLAS=\/nonexistent\/libblas\.so: cannot load/);
  assert.match(result.error, /DISTLAB_CPU_BLAS=\/nonexistent\/libblas\.so: cannot load \/nonexistent\/libblas\.so/);
});
test("openblasMisfit: an OpenBLAS on pre-AVX2 kernels where the core has AVX2 or AVX-512 names the target it took and the one that fits", () => {
  const prescott = "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64";
  assert.deepEqual(openblasMisfit(prescott, "avx512f"), { took: "Prescott", coreType: "SkylakeX" });
  assert.deepEqual(openblasMisfit(prescott.replace("Prescott", "Sandybridge"), "avx2"), { took: "Sandybridge", coreType: "Haswell" });
  assert.equal(openblasMisfit(prescott, "baseline"), undefined, "a core without AVX2: Prescott's kernels are what it can run");
  assert.equal(openblasMisfit(prescott.replace("Prescott", "SkylakeX"), "avx512f"), undefined);
  assert.equal(openblasMisfit(prescott.replace("Prescott", "Haswell"), "avx512f"), undefined, "AVX2 kernels on an AVX-512 core: slower, but not the fallback");
  assert.equal(openblasMisfit(undefined, "avx512f"), undefined);
});
