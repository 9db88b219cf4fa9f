/**
 * GPU side of the WebGPU benchmark (run.sh runs it next to PyTorch on the
 * same card): f32 matMul 1024-8192 through TF.js's webgpu backend with its
 * stock tiles and with distlab's retuned tiles (each checked against the
 * stock result), then the MLP and tiny-GPT training steps of
 * ../compute-models.ts. Bundled by build.mjs into one file (Dawn's
 * `webgpu` package stays external). Prints JSON lines.
 */
import * as tfCore from "@tensorflow/tfjs-core";
// The package marks this file as a side effect only for its own bundles; bundled here it must be named to keep the gradients.
import "@tensorflow/tfjs-core/dist/register_all_gradients";
import { chooseBackend } from "../../kernel/src/compute/backend-choice";
import { prepareWebGpu } from "../../kernel/src/compute/webgpu";
import { batchMatMulOverrides, tileFromEnv, type MatMulTile } from "../../kernel/src/compute/webgpu/batch-mat-mul";
import { installWebGpuOverrides } from "../../kernel/src/compute/webgpu/overrides";
import { gptStep, mlpStep, type TrainStep } from "../compute-models";

type Tf = typeof import("@tensorflow/tfjs");
const tf = tfCore as unknown as Tf;
const print = (record: object) => console.log(JSON.stringify(record));
// Each tile twice, interleaved, so a slow moment of the card shows up as disagreement between the two passes.
const TILES = (process.env.TILES ?? "stock,16x16:8,8x8:8,stock,16x16:8,8x8:8").split(",");
const SIZES = (process.env.SIZES ?? "1024,2048,3072,4096,6144,8192").split(",").map(Number);

/** f32 n x n x n matMul throughput on the current kernels, TFLOP/s. */
async function matMulTflops(n: number): Promise<number> {
  const a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
  const once = () => tf.matMul(a, b);
  for (let i = 0; i < 2; i++) once().dispose();
  const warm = once();
  await tf.slice(warm, [0, 0], [1, 1]).data();
  warm.dispose();
  const reps = Math.max(3, Math.min(50, Math.round(4e12 / (2 * n ** 3))));
  const started = performance.now();
  let last: tfCore.Tensor | undefined;
  for (let i = 0; i < reps; i++) { last?.dispose(); last = once(); }
  await tf.slice(last!, [0, 0], [1, 1]).data(); // the queue runs in order: the last product done means all are
  const seconds = (performance.now() - started) / 1000;
  tf.dispose([last!, a, b]);
  return (2 * n ** 3 * reps) / seconds / 1e12;
}

async function main(): Promise<void> {
  process.env.DISTLAB_WEBGPU_MATMUL_TILE = "stock"; // the sweep installs tiles itself
  await prepareWebGpu();
  require("@tensorflow/tfjs-backend-webgpu");
  const chosen = await chooseBackend(tf, "webgpu");
  // How many commands TF.js records before submitting them to the GPU queue (its default: 15).
  if (process.env.SUBMIT) tf.env().set("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", Number(process.env.SUBMIT));
  const adapter = await (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<{ info: Record<string, unknown> }> } } }).navigator.gpu.requestAdapter();
  const info = adapter.info;
  print({ backend: chosen.backend, device: chosen.device, adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description } });
  const webgpu = require("@tensorflow/tfjs-backend-webgpu") as { webgpu_util: { computeDispatch: never } };
  const stock = new Map(["BatchMatMul", "_FusedMatMul"].map((name) => [name, tf.getKernel(name, "webgpu")!]));
  const useTile = (tile: MatMulTile | undefined) => {
    for (const [name, config] of stock) {
      tf.unregisterKernel(name, "webgpu");
      tf.registerKernel(config);
    }
    if (!tile) return;
    for (const config of batchMatMulOverrides((name) => stock.get(name)!.kernelFunc, tile, webgpu.webgpu_util.computeDispatch)) {
      tf.unregisterKernel(config.kernelName, "webgpu");
      tf.registerKernel({ ...config, setupFunc: stock.get(config.kernelName)!.setupFunc } as never);
    }
  };

  // Correctness of each tile against the stock shader, on sizes that do and do not fit the tiles.
  const reference = new Map<number, Float32Array>();
  const inputs = new Map<number, [tfCore.Tensor, tfCore.Tensor]>();
  for (const n of [1000, 1024]) inputs.set(n, [tf.randomNormal([n, n], 0, 1, "float32", 1), tf.randomNormal([n, n], 0, 1, "float32", 2)]);
  const best = new Map<number, { tile: string; tflops: number }>();
  for (const tileName of process.env.SKIP_MATMUL ? [] : TILES) {
    let tile: MatMulTile | undefined;
    try {
      tile = tileFromEnv(tileName === "stock" ? "stock" : tileName, { threads: [16, 16], rowsPerThread: 4, minOutputs: 1 });
      useTile(tile);
      for (const [n, [a, b]] of inputs) {
        const c = tf.matMul(a, b);
        const values = (await c.data()) as Float32Array;
        c.dispose();
        if (!reference.has(n)) reference.set(n, values);
        let worst = 0;
        reference.get(n)!.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - values[i]!) / (1 + Math.abs(v))); });
        if (worst > 1e-3) throw new Error(`tile ${tileName}: ${n}x${n} differs from the stock shader by ${worst}`);
      }
      for (const n of SIZES) {
        const tflops = await matMulTflops(n);
        print({ matmul: n, tile: tileName, tflops: Number(tflops.toFixed(2)) });
        if (!best.has(n) || best.get(n)!.tflops < tflops) best.set(n, { tile: tileName, tflops });
      }
    } catch (error) {
      print({ tile: tileName, error: String((error as Error).message).slice(0, 300) });
    }
  }
  print({ best: Object.fromEntries(best) });

  // "default": what a rank gets from chooseBackend, the overrides as installWebGpuOverrides puts them in place.
  for (const tileName of ["stock", "default"]) {
    useTile(undefined);
    if (tileName === "default") {
      delete process.env.DISTLAB_WEBGPU_MATMUL_TILE;
      const installed = installWebGpuOverrides(tf);
      print({ installed });
      for (const n of [2048, 8192]) print({ matmul: n, tile: "default", tflops: Number((await matMulTflops(n)).toFixed(2)) });
    }
    for (const [name, make] of [["mlp", mlpStep], ["gpt", gptStep]] as const) {
      const model: TrainStep = make(tf);
      for (let i = 0; i < 3; i++) await model.stepAsync();
      const before = tf.memory();
      const times: number[] = [];
      let loss = NaN;
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        loss = await model.stepAsync();
        times.push(performance.now() - started);
      }
      const after = tf.memory();
      print({ step: name, tile: tileName, batchSubmit: tf.env().get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE"), ms: Number(times.sort((x, y) => x - y)[10]!.toFixed(2)), loss, leakedTensors: after.numTensors - before.numTensors, leakedBytes: after.numBytes - before.numBytes });
      if (process.env.PROFILE && name === "gpt") {
        // Kernel count and GPU time (timestamp queries) against the step's wall time: launch overhead or GPU work?
        const started = performance.now();
        const profile = await tf.profile(async () => { await model.stepAsync(); });
        const wall = performance.now() - started;
        const byKernel = new Map<string, [number, number]>();
        for (const k of profile.kernels) { const v = byKernel.get(k.name) ?? [0, 0]; v[0] += Number(k.kernelTimeMs) || 0; v[1]++; byKernel.set(k.name, v); }
        const gpuMs = [...byKernel.values()].reduce((s, v) => s + v[0], 0);
        print({ profile: name, kernels: profile.kernels.length, gpuMs: Number(gpuMs.toFixed(2)), wallMs: Number(wall.toFixed(1)), top: [...byKernel].sort((x, y) => y[1][0] - x[1][0]).slice(0, 8).map(([k, v]) => `${k} ${v[0].toFixed(2)}ms x${v[1]}`) });
      }
      model.dispose();
    }
  }
}

main().then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
