/**
 * The one list of kernel overrides for TensorFlow.js's webgpu backend and
 * their installation (same scheme as ../wasm/overrides.ts: stock kernels
 * captured first, replaced in the global registry, idempotent), plus the
 * gradient it replaces (mean-gradient.ts). Host-side tunings of the backend
 * instance are in host-tuning.ts (they need the backend to exist).
 *
 * FUSED_KERNELS are new kernels, not replacements: the fused ops of
 * ../fused/ call them where they are registered (webgpu only).
 */
import type { KernelConfig, KernelFunc } from "@tensorflow/tfjs";
import { batchMatMulOverrides, gemmTilesFromEnv, tileFromEnv } from "./batch-mat-mul";
import { causalAttentionKernels } from "./causal-attention";
import { causalSoftmaxKernels } from "./causal-softmax";
import { geluKernels } from "./gelu";
import { layerNormKernels } from "./layer-norm";
import { leadingSumOverride } from "./leading-sum";
import { meanGradient } from "./mean-gradient";
import { softmaxCrossEntropyKernels } from "./softmax-cross-entropy";

type Tf = typeof import("@tensorflow/tfjs");
type TfRegistry = Pick<Tf, "getKernel" | "registerKernel" | "unregisterKernel" | "getGradient" | "registerGradient" | "reshape" | "div" | "broadcastTo" | "scalar" | "env">;

const OURS = Symbol.for("distlab.compute.override");

function installMatMul(tf: TfRegistry, env: NodeJS.ProcessEnv): string[] {
  const matMul = tf.getKernel("BatchMatMul", "webgpu");
  if (matMul === undefined || (matMul as { [OURS]?: true })[OURS]) return [];
  const tile = tileFromEnv(env.DISTLAB_WEBGPU_MATMUL_TILE);
  if (tile === undefined) return [];
  const webgpu = require("@tensorflow/tfjs-backend-webgpu") as { webgpu_util: { computeDispatch: Parameters<typeof batchMatMulOverrides>[2] } };
  const stock = (name: string): KernelFunc => tf.getKernel(name, "webgpu")!.kernelFunc;
  const gemmTiles = gemmTilesFromEnv(env.DISTLAB_WEBGPU_GEMM);
  const gemm = gemmTiles && { tiles: gemmTiles, minOutputs: tile.minOutputs, submitEvery: () => tf.env().getNumber("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE") };
  const configs: KernelConfig[] = batchMatMulOverrides(stock, tile, webgpu.webgpu_util.computeDispatch, gemm);
  for (const config of configs) {
    const original = tf.getKernel(config.kernelName, "webgpu")!;
    tf.unregisterKernel(config.kernelName, "webgpu");
    tf.registerKernel({ ...config, ...(original.setupFunc ? { setupFunc: original.setupFunc } : {}), [OURS]: true } as KernelConfig);
  }
  return configs.map((c) => c.kernelName);
}

/** Sum over leading axes in one dispatch (leading-sum.ts); DISTLAB_WEBGPU_FUSED_OPS=0 keeps TF.js's. */
function installLeadingSum(tf: TfRegistry, env: NodeJS.ProcessEnv): string[] {
  const original = tf.getKernel("Sum", "webgpu");
  if (env.DISTLAB_WEBGPU_FUSED_OPS === "0" || original === undefined || (original as { [OURS]?: true })[OURS]) return [];
  const config = leadingSumOverride(original.kernelFunc, () => tf.env().getNumber("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE"));
  tf.unregisterKernel("Sum", "webgpu");
  tf.registerKernel({ ...config, ...(original.setupFunc ? { setupFunc: original.setupFunc } : {}), [OURS]: true } as KernelConfig);
  return ["Sum"];
}

/** DISTLAB_WEBGPU_MEAN_GRADIENT=stock keeps TF.js's. */
function installMeanGradient(tf: TfRegistry, env: NodeJS.ProcessEnv): string[] {
  if (env.DISTLAB_WEBGPU_MEAN_GRADIENT === "stock") return [];
  if ((tf.getGradient("Mean") as { [OURS]?: true } | undefined)?.[OURS]) return [];
  tf.registerGradient({ ...meanGradient(tf), [OURS]: true } as ReturnType<typeof meanGradient>);
  return ["Mean (gradient)"];
}

/** The one list of distlab's own webgpu kernels (each file registers a forward and a gradient kernel). */
export const FUSED_KERNELS = [layerNormKernels, geluKernels, causalSoftmaxKernels, causalAttentionKernels, softmaxCrossEntropyKernels] as const;

/** DISTLAB_WEBGPU_FUSED_OPS=0 registers none (the fused ops then use stock ops). */
function installFusedKernels(tf: TfRegistry, env: NodeJS.ProcessEnv): string[] {
  if (env.DISTLAB_WEBGPU_FUSED_OPS === "0") return [];
  const submitEvery = () => tf.env().getNumber("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE");
  const installed: string[] = [];
  for (const config of FUSED_KERNELS.flatMap((kernels) => kernels(submitEvery))) {
    if (tf.getKernel(config.kernelName, "webgpu") !== undefined) continue;
    tf.registerKernel(config);
    installed.push(config.kernelName);
  }
  return installed;
}

/** Installs after @tensorflow/tfjs-backend-webgpu is loaded; returns the kernels (and gradients) replaced now. */
export function installWebGpuOverrides(tf: TfRegistry, env: NodeJS.ProcessEnv = process.env): string[] {
  if (tf.getKernel("BatchMatMul", "webgpu") === undefined) return [];
  return [...installMatMul(tf, env), ...installMeanGradient(tf, env), ...installLeadingSum(tf, env), ...installFusedKernels(tf, env)];
}
