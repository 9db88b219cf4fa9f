/**
 * GPT-2 small (distlab/models' createGpt2Small: 124,475,904 parameters,
 * 12 x 768, 12 heads, context 1024, vocabulary 50,304, tied head) trained
 * on TF.js's webgpu backend with distlab's kernels; gpt2_torch.py is its
 * PyTorch twin and gpt2.sh runs both on the same card. Bundled by
 * build.mjs into .gpu-run/gpt2-bench.cjs. Prints JSON lines:
 *
 *   check     the fused cross-entropy against stock ops at the full
 *             vocabulary (value and gradient), the untransposed products
 *             (compute/fused/mat-mul.ts) against TF.js's at the model's
 *             shapes, and the full model's first loss under each attention
 *             form (same weights, same batch)
 *   attention ms of causal attention forward + backward alone per form
 *             at contexts 64-1024 (batch 8, 12 heads of 64), SWEEP=1
 *   step      per variant (VARIANTS: name=ENV:value+ENV:value;..., the
 *             settings of compute/fused read at each call; "default" has
 *             none): ms of each of STEPS timed Adam steps after WARMUP
 *             untimed ones, each reading its loss back, as the twin does
 *   profile   GPU time per kernel, and per product and transpose shape,
 *             over one step of the first variant (timestamp queries), PROFILE=1
 *   memory    tf.memory() and the card's used memory (nvidia-smi) every 10
 *             of MEMORY_STEPS further steps, default settings
 *
 * Environment: BATCH (8), CONTEXT (1024), WARMUP (3), STEPS (10),
 * MEMORY_STEPS (100), VARIANTS ("default"), FORMS (attention forms of the
 * first-loss check and the sweep, "rows,matmul"), PROFILE, SWEEP; for a smoke test of
 * the bundle without a GPU, BACKEND=cpu and GPT2_OPTIONS (JSON overrides of
 * the model's options, e.g. '{"nLayer":1,"nEmbd":32,"nHead":2,"vocabSize":300}').
 */
import { gemmCounts } from "../../kernel/src/compute/webgpu/batch-mat-mul";
import * as tfCore from "@tensorflow/tfjs-core";
// The package marks this file as a side effect only for its own bundles; bundled here it must be named to keep the gradients.
import "@tensorflow/tfjs-core/dist/register_all_gradients";
import { execFileSync } from "node:child_process";
import { adam } from "../../kernel/src/compute/adam";
import { chooseBackend } from "../../kernel/src/compute/backend-choice";
import { causalAttention, softmaxCrossEntropy, stockSoftmaxCrossEntropy, untransposedLinear, untransposedMatMul } from "../../kernel/src/compute/fused";
import { prepareWebGpu } from "../../kernel/src/compute/webgpu";
import { seededRandom } from "../../kernel/src/data/random";
import { createGpt2Small } from "../../kernel/src/models/gpt2";
import { parameterCount } from "../../kernel/src/models/init";

type Tf = typeof import("@tensorflow/tfjs");
const tf = tfCore as unknown as Tf;
const print = (record: object) => console.log(JSON.stringify(record));
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const BATCH = env("BATCH", 8), CONTEXT = env("CONTEXT", 1024), WARMUP = env("WARMUP", 3), STEPS = env("STEPS", 10), MEMORY_STEPS = env("MEMORY_STEPS", 100);
const FORMS = (process.env.FORMS ?? "rows,matmul").split(",");
/** [name, environment] of each timed variant. */
const VARIANTS: Array<[string, Record<string, string>]> = (process.env.VARIANTS ?? "default").split(";").map((spec) => {
  const [name, settings = ""] = spec.split("=");
  return [name!, Object.fromEntries(settings.split("+").filter(Boolean).map((kv) => kv.split(":") as [string, string]))];
});

/** Used memory of GPU 0 in MiB, or null where nvidia-smi is missing. */
function gpuMemoryMiB(): number | null {
  try {
    return Number(execFileSync("nvidia-smi", ["--query-gpu=memory.used", "--format=csv,noheader,nounits"], { encoding: "utf8" }).split("\n")[0]);
  } catch {
    return null;
  }
}

/** Prints a check's figures with `passed`; a failed check makes the process exit with 1 at the end (gpt2.sh carries on). */
function checked(record: Record<string, unknown>, passed: boolean): void {
  print({ ...record, passed });
  if (!passed) process.exitCode = 1;
}

const summary = (times: number[]) => {
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x: number) => Number(x.toFixed(1));
  return { medianMs: round(sorted[Math.floor(sorted.length / 2)]!), minMs: round(sorted[0]!), maxMs: round(sorted[sorted.length - 1]!), ms: times.map(round) };
};

/** Fused cross-entropy against its stock-op formula at [rows, 50304]: max |difference| of the loss and of dlogits. */
async function crossEntropyCheck(vocabulary: number): Promise<void> {
  const rows = 256;
  const logits = tf.randomNormal([rows, vocabulary], 0, 3, "float32", 1);
  const labels = tf.randomUniform([rows], 0, vocabulary, "int32", 2);
  const [lossDiff, gradDiff] = tf.tidy(() => {
    const fused = tf.valueAndGrad((x: tfCore.Tensor) => softmaxCrossEntropy(tf, x, labels))(logits);
    const stock = tf.valueAndGrad((x: tfCore.Tensor) => stockSoftmaxCrossEntropy(tf, x, labels))(logits);
    return [tf.abs(tf.sub(fused.value, stock.value)), tf.max(tf.abs(tf.sub(fused.grad, stock.grad)))];
  });
  const [loss, grad] = [(await lossDiff!.data())[0]!, (await gradDiff!.data())[0]!];
  // dlogits are about 1 / rows = 4e-3 each; float32 sums over 50k classes agree to about 1e-6 of that.
  checked({ check: `fused cross-entropy vs stock ops at [${rows}, ${vocabulary}], loss within 1e-4, dlogits within 1e-7`, lossDiff: loss, maxGradDiff: grad }, loss <= 1e-4 && grad <= 1e-7);
  tf.dispose([logits, labels, lossDiff!, gradDiff!]);
}

/** The untransposed products against TF.js's own (value and gradients) at the model's shapes: max |difference| relative to the largest entry. */
async function productCheck(o: { vocabSize: number; nEmbd: number; nHead: number; blockSize: number }): Promise<void> {
  const rows = BATCH * o.blockSize, c = o.nEmbd, hs = c / o.nHead;
  const normal = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed);
  const relative = (a: tfCore.Tensor, b: tfCore.Tensor) => tf.div(tf.max(tf.abs(tf.sub(a, b))), tf.max(tf.abs(b)));
  const weighted = (f: (...t: tfCore.Tensor[]) => tfCore.Tensor, dy: tfCore.Tensor) => (...t: tfCore.Tensor[]) => tf.sum(tf.mul(f(...t), dy));
  const cases: Array<[string, number[][], (...t: tfCore.Tensor[]) => tfCore.Tensor, (...t: tfCore.Tensor[]) => tfCore.Tensor]> = [
    [`linear ${rows}x${c} . ${c}x${4 * c}`, [[rows, c], [c, 4 * c], [4 * c]], (x, w, b) => untransposedLinear(tf, x!, w!, b!), (x, w, b) => tf.add(tf.matMul(x!, w!), b!)],
    [`head ${rows}x${c} . t(${o.vocabSize}x${c})`, [[rows, c], [o.vocabSize, c]], (x, w) => untransposedMatMul(tf, x!, tf.transpose(w!)), (x, w) => tf.matMul(x!, w!, false, true)],
    [`attention q . t(k), ${BATCH}x${o.nHead}x${o.blockSize}x${hs} each`, [[BATCH, o.nHead, o.blockSize, hs], [BATCH, o.nHead, o.blockSize, hs]], (q, k) => untransposedMatMul(tf, q!, tf.transpose(k!, [0, 1, 3, 2])), (q, k) => tf.matMul(q!, k!, false, true)],
    [`attention weights . v, ${BATCH}x${o.nHead}x${o.blockSize}x${o.blockSize} . ${BATCH}x${o.nHead}x${o.blockSize}x${hs}`, [[BATCH, o.nHead, o.blockSize, o.blockSize], [BATCH, o.nHead, o.blockSize, hs]], (p, v) => untransposedMatMul(tf, p!, v!), (p, v) => tf.matMul(p!, v!)],
  ];
  for (const [name, shapes, ours, theirs] of cases) {
    const inputs = shapes.map((shape, i) => normal(shape, 20 + i));
    const diffs = tf.tidy(() => {
      const dy = normal(ours(...inputs).shape, 30);
      const pair = (f: typeof ours) => [f(...inputs), ...tf.grads(weighted(f, dy))(inputs)];
      const [a, b] = [pair(ours), pair(theirs)];
      return a.map((x, i) => relative(x, b[i]!));
    });
    const values = await Promise.all(diffs.map(async (d) => Number((await d.data())[0]!.toExponential(2))));
    // The same float32 products in another order: relative differences of order 1e-6 at most.
    checked({ check: `untransposed product vs tf.matMul: ${name}, max |diff| / max |value| of value then each gradient, each within 1e-4`, diffs: values }, values.every((d) => d <= 1e-4));
    tf.dispose([...diffs, ...inputs]);
  }
}

/** Causal attention forward + backward alone, per form and context: median ms of 5 after 2 untimed. */
async function attentionSweep(forms: string[]): Promise<void> {
  for (const time of [64, 128, 256, 512, 1024]) {
    const qkv = tf.randomNormal([8 * time, 3 * 768], 0, 1, "float32", 40);
    const dy = tf.randomNormal([8 * time, 768], 0, 1, "float32", 41);
    const row: Record<string, number> = {};
    for (const form of forms) {
      process.env.DISTLAB_WEBGPU_ATTENTION = form;
      const once = async () => { const g = tf.grad((x: tfCore.Tensor) => tf.sum(tf.mul(causalAttention(tf, x, { time, heads: 12 }), dy)))(qkv); await tf.slice(g, [0, 0], [1, 1]).data(); g.dispose(); };
      const times: number[] = [];
      for (let i = 0; i < 7; i++) { const t0 = performance.now(); await once(); if (i >= 2) times.push(performance.now() - t0); }
      row[form] = summary(times).medianMs;
    }
    print({ attention: "forward + backward ms, batch 8, 12 heads of 64", time, ...row });
    tf.dispose([qkv, dy]);
  }
}

async function main(): Promise<void> {
  if (process.env.BACKEND === "cpu") {
    require("@tensorflow/tfjs-backend-cpu");
    await tf.setBackend("cpu");
    print({ backend: tf.getBackend(), batch: BATCH, context: CONTEXT });
  } else {
    await prepareWebGpu();
    require("@tensorflow/tfjs-backend-webgpu"); // bundled: chooseBackend's own require names it at run time only
    const chosen = await chooseBackend(tf, "webgpu");
    print({ backend: chosen.backend, device: chosen.device, installed: chosen.overrides.join(","), batch: BATCH, context: CONTEXT });
  }

  const started = performance.now();
  const model = createGpt2Small({ blockSize: CONTEXT, seed: 1, ...JSON.parse(process.env.GPT2_OPTIONS ?? "{}") });
  const { vocabSize } = model.options;
  print({ model: "gpt2-small", parameters: parameterCount(model.params), options: model.options, initSeconds: Number(((performance.now() - started) / 1000).toFixed(1)) });
  await crossEntropyCheck(vocabSize);
  const reported = (name: string) => (error: unknown) => checked({ [name]: "failed", error: String((error as Error).message).slice(0, 400) }, false);
  await productCheck(model.options).catch(reported("productCheck"));
  if (process.env.SWEEP) await attentionSweep(FORMS).catch(reported("attentionSweep"));

  const random = seededRandom(7);
  const ids = (n: number) => Int32Array.from({ length: n }, () => Math.floor(random() * vocabSize));
  const batch = { x: tf.tensor2d(ids(BATCH * CONTEXT), [BATCH, CONTEXT], "int32"), y: tf.tensor2d(ids(BATCH * CONTEXT), [BATCH, CONTEXT], "int32") };

  const firstLoss: Record<string, number> = {};
  for (const form of FORMS) {
    process.env.DISTLAB_WEBGPU_ATTENTION = form;
    const loss = model.loss(batch);
    firstLoss[form] = (await loss.data())[0]!;
    loss.dispose();
  }
  const spread = Math.max(...Object.values(firstLoss)) - Math.min(...Object.values(firstLoss));
  checked({ check: `first loss per attention form (same weights and batch; ln(vocab) = ${Math.log(vocabSize).toFixed(3)}), within 1e-4`, ...firstLoss }, spread <= 1e-4);

  const optimizer = adam(tf, 1e-3, 0.9, 0.999, 1e-8);
  const step = async () => {
    const loss = optimizer.minimize(() => model.loss(batch), true, model.params)!;
    const value = (await loss.data())[0]!;
    loss.dispose();
    return value;
  };
  delete process.env.DISTLAB_WEBGPU_ATTENTION;
  const baseline = { ...process.env };
  for (const [index, [name, settings]] of VARIANTS.entries()) {
    process.env = { ...baseline, ...settings };
    const form = name;
    try {
      const losses: number[] = [];
      for (let i = 0; i < WARMUP; i++) losses.push(await step());
      const times: number[] = [];
      for (let i = 0; i < STEPS; i++) {
        const t0 = performance.now();
        losses.push(await step());
        times.push(performance.now() - t0);
      }
      print({ step: "gpt2", variant: name, registerKernelProducts: gemmCounts.products, byTile: { ...gemmCounts.byTile }, settings, dawn: process.env.DISTLAB_WEBGPU_DAWN ?? "", batch: BATCH, ...summary(times), losses: losses.map((l) => Number(l.toFixed(4))) });
      if (process.env.PROFILE && index === 0) {
        const profile = await tf.profile(async () => { await step(); });
        // By kernel, and the products by kernel and input shapes (which of them are slow).
        const byKernel = new Map<string, [number, number]>(), byProduct = new Map<string, [number, number]>();
        const add = (map: Map<string, [number, number]>, key: string, ms: number) => { const v = map.get(key) ?? [0, 0]; v[0] += ms; v[1]++; map.set(key, v); };
        for (const k of profile.kernels) {
          const ms = Number(k.kernelTimeMs) || 0;
          add(byKernel, k.name, ms);
          if (k.name.includes("MatMul") || k.name === "Transpose") add(byProduct, `${k.name} ${JSON.stringify(k.inputShapes)}`, ms);
        }
        const gpuMs = [...byKernel.values()].reduce((s, v) => s + v[0], 0);
        const top = (map: Map<string, [number, number]>, n: number) => [...map].sort((x, y) => y[1][0] - x[1][0]).slice(0, n).map(([k, v]) => `${k} ${v[0].toFixed(1)}ms x${v[1]}`);
        print({ profile: "gpt2", variant: form, kernels: profile.kernels.length, gpuMs: Number(gpuMs.toFixed(1)), top: top(byKernel, 14), products: top(byProduct, 16) });
      }
    } catch (error) {
      print({ step: "gpt2", variant: form, error: String((error as Error).message).slice(0, 400) });
    }
  }

  process.env = baseline;
  // Memory across MEMORY_STEPS more steps (default settings): the tensors and bytes TF.js holds, and the card's used memory.
  const samples: Array<{ step: number; numTensors: number; numBytes: number; gpuMiB: number | null }> = [];
  for (let i = 0; i <= MEMORY_STEPS; i++) {
    if (i % 10 === 0) { const m = tf.memory(); samples.push({ step: i, numTensors: m.numTensors, numBytes: m.numBytes, gpuMiB: gpuMemoryMiB() }); }
    if (i < MEMORY_STEPS) await step();
  }
  const [first, last] = [samples[0]!, samples[samples.length - 1]!];
  print({ memory: "gpt2", steps: MEMORY_STEPS, tensorDrift: last.numTensors - first.numTensors, byteDrift: last.numBytes - first.numBytes, gpuMiBDrift: first.gpuMiB === null ? null : last.gpuMiB! - first.gpuMiB, samples });
  optimizer.dispose();
}

main().then(() => process.exit(process.exitCode ?? 0), (error) => { console.error(error); process.exit(1); });
