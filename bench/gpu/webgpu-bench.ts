/**
 * GPU side of the WebGPU benchmark (run.sh runs it next to PyTorch on the
 * same card). Bundled by build.mjs into one file (Dawn's `webgpu` package
 * stays external). Prints JSON lines. Two modes (env MODE):
 *
 *   matmul  f32 matMul through TF.js's webgpu backend with its stock tiles,
 *           distlab's retuned tile and distlab's register-blocked kernel
 *           ("gemm"), each checked against the stock result.
 *   steps   the MLP and tiny-GPT training steps of ../compute-models.ts
 *           under the settings of this process's environment (run.sh runs
 *           one process per variant, since Dawn options and the host
 *           tunings are fixed per process): DISTLAB_WEBGPU_HOST,
 *           DISTLAB_WEBGPU_MEAN_GRADIENT, DISTLAB_WEBGPU_FUSED_ADAM,
 *           DISTLAB_WEBGPU_MATMUL_TILE, DISTLAB_WEBGPU_DAWN, and TF.js
 *           flags CPU_FORWARD (WEBGPU_CPU_FORWARD) and SUBMIT
 *           (WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE). The GPT's weights and
 *           data are seeded, so every variant's losses must agree; the
 *           fused Adam is also compared with tf.train.adam's update in the
 *           same process (max |difference| of the parameters), and each
 *           fused op (layer norm, GELU, causal softmax, causal attention,
 *           cross-entropy, leading-axes sum: value and gradients) with its formula in
 *           stock ops on the same GPU.
 *           DISTLAB_WEBGPU_FUSED_OPS=0 leaves the fused kernels out.
 */
import * as tfCore from "@tensorflow/tfjs-core";
// The package marks this file as a side effect only for its own bundles; bundled here it must be named to keep the gradients.
import "@tensorflow/tfjs-core/dist/register_all_gradients";
import { adam, fusedAdamAvailable } from "../../kernel/src/compute/adam";
import { chooseBackend } from "../../kernel/src/compute/backend-choice";
import { prepareWebGpu } from "../../kernel/src/compute/webgpu";
import { causalAttention, softmaxCrossEntropy, stockSoftmaxCrossEntropy, causalSoftmax, causalSoftmaxReference, gelu, geluReference, layerNorm, layerNormReference, stockCausalAttention } from "../../kernel/src/compute/fused";
import { hasFusedKernel } from "../../kernel/src/compute/fused/kernels";
import { batchMatMulOverrides, gemmCounts, tileFromEnv, type GemmOption, type MatMulTile } from "../../kernel/src/compute/webgpu/batch-mat-mul";
import { DEFAULT_GEMM_TILES, parseGemmTile, parseGemmTiles } from "../../kernel/src/compute/webgpu/register-gemm";
import { GPT, gptLoss, gptStep, mlpStep } from "../compute-models";

type Tf = typeof import("@tensorflow/tfjs");
type Variable = import("@tensorflow/tfjs").Variable;
const tf = tfCore as unknown as Tf;
const print = (record: object) => console.log(JSON.stringify(record));
const TILES = (process.env.TILES ?? "stock,16x16:8,gemm,stock,16x16:8,gemm").split(",");
const SIZES = (process.env.SIZES ?? "1024,2048,4096,8192").split(",").map(Number);
const VARIANT = process.env.VARIANT ?? "default";

/**
 * f32 n x n x n matMul throughput on the current kernels, TFLOP/s, over about 15 TFLOP of work
 * (0.3-0.6 s), after an untimed block of the same products: TF.js returns a disposed output's
 * buffer to its pool only once the queue has run past it, so the first block at a size creates
 * new buffers as it goes (at 4096 it ran 30% slower on both TF.js's kernel and distlab's), where
 * PyTorch's caching allocator is warm after one product.
 */
async function matMulTflops(n: number): Promise<number> {
  const a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
  const once = () => tf.matMul(a, b);
  const reps = Math.max(3, Math.min(4000, Math.round(1.5e13 / (2 * n ** 3))));
  const block = async (): Promise<number> => {
    const started = performance.now();
    let last: tfCore.Tensor | undefined;
    for (let i = 0; i < reps; i++) { last?.dispose(); last = once(); }
    await tf.slice(last!, [0, 0], [1, 1]).data(); // the queue runs in order: the last product done means all are
    last!.dispose();
    return (performance.now() - started) / 1000;
  };
  await block(); // warm-up
  const seconds = await block();
  tf.dispose([a, b]);
  return (2 * n ** 3 * reps) / seconds / 1e12;
}

async function matMulSweep(): Promise<void> {
  const webgpu = require("@tensorflow/tfjs-backend-webgpu") as { webgpu_util: { computeDispatch: never } };
  const stock = new Map(["BatchMatMul", "_FusedMatMul"].map((name) => [name, tf.getKernel(name, "webgpu")!]));
  const useTile = (tile: MatMulTile | undefined, gemm?: GemmOption) => {
    for (const [, config] of stock) { tf.unregisterKernel(config.kernelName, "webgpu"); tf.registerKernel(config); }
    if (!tile) return;
    for (const config of batchMatMulOverrides((name) => stock.get(name)!.kernelFunc, tile, webgpu.webgpu_util.computeDispatch, gemm)) {
      tf.unregisterKernel(config.kernelName, "webgpu");
      tf.registerKernel({ ...config, setupFunc: stock.get(config.kernelName)!.setupFunc } as never);
    }
  };
  // checked against the first entry of TILES (stock): square products on and off the tiles, and
  // batched ones (a batch of B, and one B for every batch) that the register-blocked kernel takes
  const reference = new Map<string, Float32Array>();
  const inputs = new Map<string, [tfCore.Tensor, tfCore.Tensor, boolean?, boolean?]>();
  for (const n of [1000, 1024]) inputs.set(`${n}x${n}`, [tf.randomNormal([n, n], 0, 1, "float32", 1), tf.randomNormal([n, n], 0, 1, "float32", 2)]);
  inputs.set("3x256x512 . 3x512x384", [tf.randomNormal([3, 256, 512], 0, 1, "float32", 3), tf.randomNormal([3, 512, 384], 0, 1, "float32", 4)]);
  inputs.set("3x256x512 . 512x384", [tf.randomNormal([3, 256, 512], 0, 1, "float32", 5), tf.randomNormal([512, 384], 0, 1, "float32", 6)]);
  // the backward pass's forms: A^T B (weight gradients) and A B^T (input gradients)
  inputs.set("(512x256)^T . 512x384", [tf.randomNormal([512, 256], 0, 1, "float32", 7), tf.randomNormal([512, 384], 0, 1, "float32", 8), true, false]);
  inputs.set("2x256x512 . (2x384x512)^T", [tf.randomNormal([2, 256, 512], 0, 1, "float32", 9), tf.randomNormal([2, 384, 512], 0, 1, "float32", 10), false, true]);
  // one product for each default tile (register-gemm.ts, DEFAULT_GEMM_TILES): N = 512 (128x256, A and B^T),
  // M = 256 and N = 384 (256x128, above), M = N = 384 (128x128x32), K = 48 (128x128x16)
  inputs.set("(512x256)^T . 512x512", [tf.randomNormal([512, 256], 0, 1, "float32", 13), tf.randomNormal([512, 512], 0, 1, "float32", 14), true, false]);
  inputs.set("384x512 . (512x512)^T", [tf.randomNormal([384, 512], 0, 1, "float32", 15), tf.randomNormal([512, 512], 0, 1, "float32", 16), false, true]);
  inputs.set("384x512 . 512x384", [tf.randomNormal([384, 512], 0, 1, "float32", 17), tf.randomNormal([512, 384], 0, 1, "float32", 18)]);
  inputs.set("384x48 . 48x384", [tf.randomNormal([384, 48], 0, 1, "float32", 19), tf.randomNormal([48, 384], 0, 1, "float32", 20)]);
  inputs.set("(3x512x256)^T . (512x384)^T", [tf.randomNormal([3, 512, 256], 0, 1, "float32", 11), tf.randomNormal([384, 512], 0, 1, "float32", 12), true, true]);
  for (const tileName of TILES) {
    try {
      // "gemm" (the default tiles) or "gemm=TILE" (that one): the register-blocked kernel where it applies, TF.js's shader retuned to 16x16:8 elsewhere
      const gemmTiles = tileName.startsWith("gemm") ? (tileName.includes("=") ? [parseGemmTile(tileName.split("=")[1]!)] : parseGemmTiles(DEFAULT_GEMM_TILES)) : undefined;
      const tile = tileFromEnv(gemmTiles ? "16x16:8" : tileName, { threads: [16, 16], rowsPerThread: 4, minOutputs: 1 });
      useTile(tile, gemmTiles && { tiles: gemmTiles, minOutputs: 1, submitEvery: () => tf.env().getNumber("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE") });
      for (const [n, [a, b, transposeA, transposeB]] of inputs) {
        const c = tf.matMul(a, b, transposeA, transposeB);
        const values = (await c.data()) as Float32Array;
        c.dispose();
        if (!reference.has(n)) reference.set(n, values);
        let worst = 0;
        reference.get(n)!.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - values[i]!) / (1 + Math.abs(v))); });
        if (worst > 1e-3) throw new Error(`tile ${tileName}: ${n} differs from the stock shader by ${worst}`);
        if (gemmTiles) print({ tile: tileName, check: n, maxRelativeDiffFromStock: worst, registerKernelProducts: gemmCounts.products, byTile: { ...gemmCounts.byTile } });
      }
      for (const n of SIZES) print({ matmul: n, tile: tileName, tflops: Number((await matMulTflops(n)).toFixed(2)) });
    } catch (error) {
      print({ tile: tileName, error: String((error as Error).message).slice(0, 300) });
    }
  }
}

/** The tiny GPT of compute-models.ts with seeded weights and data, trained by distlab's adam (stock update unless fused). */
function seededGpt() {
  const { context: t, batch: b, vocabulary } = GPT;
  const base = gptStep(tf); // its variables, in gptLoss's order
  const variables = base.variables;
  variables.forEach((v, i) => tf.tidy(() => v.assign(tf.randomNormal(v.shape, v.name.endsWith(".g") ? 1 : 0, 0.02, "float32", 100 + i))));
  const tokens = tf.randomUniform([b * t], 0, vocabulary, "int32", 1);
  const targets = tf.randomUniform([b * t], 0, vocabulary, "int32", 2);
  const causalMask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)), -1e9));
  const loss = (params: Variable[]) => gptLoss(tf, params, tokens, targets, causalMask) as import("@tensorflow/tfjs").Scalar;
  return { variables, loss, dispose: () => { base.dispose(); tf.dispose([tokens, targets, causalMask]); } };
}

async function timeSteps(name: string, step: () => Promise<number>): Promise<void> {
  for (let i = 0; i < 3; i++) await step();
  const before = tf.memory();
  const times: number[] = [];
  let loss = NaN;
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    loss = await step();
    times.push(performance.now() - started);
  }
  const after = tf.memory();
  times.sort((x, y) => x - y);
  print({ variant: VARIANT, step: name, ms: Number(times[10]!.toFixed(2)), minMs: Number(times[0]!.toFixed(2)), loss, leakedTensors: after.numTensors - before.numTensors, leakedBytes: after.numBytes - before.numBytes });
}

/** Fused kernels against their formulas in stock ops, at the tiny GPT's shapes: max |difference| of the value and of each gradient. */
async function fusedCheck(): Promise<void> {
  const { batch: b, context: t, channels: c, heads } = GPT;
  const normal = (shape: number[], seed: number, std = 1) => tf.randomNormal(shape, 0, std, "float32", seed);
  const labels = tf.randomUniform([b * t], 0, GPT.vocabulary, "int32", 10);
  const weighted = (f: (...xs: tfCore.Tensor[]) => tfCore.Tensor, dy: tfCore.Tensor) => (...xs: tfCore.Tensor[]) => tf.sum(tf.mul(f(...xs), dy));
  const cases: Array<[string, tfCore.Tensor[], (...xs: tfCore.Tensor[]) => tfCore.Tensor, (...xs: tfCore.Tensor[]) => tfCore.Tensor]> = [
    ["layerNorm", [normal([b * t, c], 1, 2), normal([c], 2), normal([c], 3)], (x, g, n) => layerNorm(tf, x!, g!, n!), (x, g, n) => layerNormReference.forward(tf, x!, g!, n!)],
    ["gelu", [normal([b * t, 4 * c], 4, 3)], (x) => gelu(tf, x!), (x) => geluReference.forward(tf, x!)],
    ["causalSoftmax", [normal([b, heads, t, t], 5, 3)], (s) => causalSoftmax(tf, s!, 0.17), (s) => causalSoftmaxReference.forward(tf, s!, 0.17)],
    ["causalAttention", [normal([b * t, 3 * c], 7)], (x) => causalAttention(tf, x!, { time: t, heads }), (x) => stockCausalAttention(tf, x!, { time: t, heads })],
    ["crossEntropy", [normal([b * t, GPT.vocabulary], 9, 3)], (x) => softmaxCrossEntropy(tf, x!, labels), (x) => stockSoftmaxCrossEntropy(tf, x!, labels)],
    // Sum over axis 0 (the override's column sum) against TF.js's innermost-axis reduce of the transpose.
    ["leadingSum", [normal([b * t, 4 * c], 8)], (x) => tf.sum(x!, 0), (x) => tf.sum(tf.transpose(x!), -1)],
  ];
  const diffs: Record<string, number[]> = {};
  for (const [name, inputs, fused, stock] of cases) {
    const outputs = tf.tidy(() => {
      const dy = normal(fused(...inputs).shape, 6);
      const pair = (f: typeof fused) => [f(...inputs), ...tf.grads(weighted(f, dy))(inputs)];
      const [a, r] = [pair(fused), pair(stock)];
      return a.map((x, i) => tf.max(tf.abs(tf.sub(x, r[i]!))));
    });
    diffs[name] = await Promise.all(outputs.map(async (d) => Number((await d.data())[0]!.toExponential(2))));
    tf.dispose([...outputs, ...inputs]);
  }
  labels.dispose();
  print({ variant: VARIANT, fusedCheck: "fused kernels vs stock ops, max |diff| of value then each gradient", ...diffs });
}

async function steps(): Promise<void> {
  if (process.env.CPU_FORWARD) tf.env().set("WEBGPU_CPU_FORWARD", process.env.CPU_FORWARD === "true");
  if (process.env.SUBMIT) tf.env().set("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", Number(process.env.SUBMIT));
  const mlp = mlpStep(tf);
  await timeSteps("mlp", () => mlp.stepAsync());
  mlp.dispose();

  const gpt = seededGpt();
  const optimizer = adam(tf, 1e-3);
  const run = async () => { const l = optimizer.minimize(() => gpt.loss(gpt.variables), true)!; const v = (await l.data())[0]!; l.dispose(); return v; };
  await timeSteps("gpt", run);
  if (process.env.PROFILE) {
    // Kernel count and GPU time (timestamp queries) against the step's wall time.
    const started = performance.now();
    const profile = await tf.profile(async () => { await run(); });
    const byKernel = new Map<string, [number, number]>();
    for (const k of profile.kernels) { const v = byKernel.get(k.name) ?? [0, 0]; v[0] += Number(k.kernelTimeMs) || 0; v[1]++; byKernel.set(k.name, v); }
    const gpuMs = [...byKernel.values()].reduce((s, v) => s + v[0], 0);
    print({ variant: VARIANT, profile: "gpt", kernels: profile.kernels.length, gpuMs: Number(gpuMs.toFixed(2)), wallMs: Number((performance.now() - started).toFixed(1)), top: [...byKernel].sort((x, y) => y[1][1] - x[1][1]).slice(0, 8).map(([k, v]) => `${k} ${v[0].toFixed(2)}ms x${v[1]}`) });
  }
  optimizer.dispose();
  if (fusedAdamAvailable(tf)) {
    // The fused update against tf.train.adam's on the same gradients: two copies of the weights, 3 steps each.
    const copy = gpt.variables.map((v) => tf.variable(v.clone()));
    const stock = tf.train.adam(1e-3), fused = adam(tf, 1e-3);
    let lossDiff = 0;
    for (let s = 0; s < 3; s++) {
      const a = stock.minimize(() => gpt.loss(copy), true)!, b = fused.minimize(() => gpt.loss(gpt.variables), true)!;
      lossDiff = Math.max(lossDiff, Math.abs((await a.data())[0]! - (await b.data())[0]!));
      tf.dispose([a, b]);
    }
    let worst = 0;
    for (let i = 0; i < copy.length; i++) { const d = tf.max(tf.abs(tf.sub(copy[i]!, gpt.variables[i]!))); worst = Math.max(worst, (await d.data())[0]!); d.dispose(); }
    print({ variant: VARIANT, adamCheck: "fused vs tf.train.adam, 3 steps", maxAbsParamDiff: worst, maxLossDiff: lossDiff });
    tf.dispose(copy); stock.dispose(); fused.dispose();
  }
  gpt.dispose();
  if (hasFusedKernel(tf, "DistlabLayerNorm", [])) await fusedCheck();
}

async function main(): Promise<void> {
  // Required here so that the bundle holds the backend (chooseBackend's require names it at run time, and the GPU machine has no node_modules).
  await prepareWebGpu();
  require("@tensorflow/tfjs-backend-webgpu");
  // the matMul sweep installs each kernel itself: "stock" must find TF.js's own, not distlab's default
  if (process.env.MODE === "matmul") process.env.DISTLAB_WEBGPU_MATMUL_TILE = "stock";
  const chosen = await chooseBackend(tf, "webgpu");
  const info = (await (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<{ info: Record<string, unknown> }> } } }).navigator.gpu.requestAdapter()).info;
  print({ variant: VARIANT, backend: chosen.backend, device: chosen.device, installed: chosen.overrides.join(","), adapter: info.device, fusedAdam: fusedAdamAvailable(tf), cpuForward: tf.env().getBool("WEBGPU_CPU_FORWARD"), dawn: process.env.DISTLAB_WEBGPU_DAWN ?? "" });
  if ((process.env.MODE ?? "steps") === "matmul") await matMulSweep();
  else await steps();
  const stats = (tf.backend() as unknown as { device: Record<symbol, (() => object) | undefined> }).device[Symbol.for("distlab.compute.bindGroupCache")];
  if (stats) print({ variant: VARIANT, bindGroups: stats() });
}

main().then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
