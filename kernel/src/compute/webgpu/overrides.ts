/**
 * The one list of kernel overrides for TensorFlow.js's webgpu backend and
 * their installation (same scheme as ../wasm/overrides.ts: stock kernels
 * captured first, replaced in the global registry, idempotent), plus the
 * gradient it replaces (mean-gradient.ts). Host-side tunings of the backend
 * instance are in host-tuning.ts (they need the backend to exist).
 */
import type { KernelConfig, KernelFunc } from "@tensorflow/tfjs";
import { batchMatMulOverrides, tileFromEnv } from "./batch-mat-mul";
import { meanGradient } from "./mean-gradient";

type Tf = typeof import("@tensorflow/tfjs");
type TfRegistry = Pick<Tf, "getKernel" | "registerKernel" | "unregisterKernel" | "getGradient" | "registerGradient" | "reshape" | "div" | "broadcastTo" | "scalar">;

const OURS = Symbol.for("distlab.compute.override");

function installMatMul(tf: TfRegistry, env: NodeJS.ProcessEnv): string[] {
  const matMul = tf.getKernel("BatchMatMul", "webgpu");
  if (matMul === undefined || (matMul as { [OURS]?: true })[OURS]) return [];
  const tile = tileFromEnv(env.DISTLAB_WEBGPU_MATMUL_TILE);
  if (tile === undefined) return [];
  const webgpu = require("@tensorflow/tfjs-backend-webgpu") as { webgpu_util: { computeDispatch: Parameters<typeof batchMatMulOverrides>[2] } };
  const stock = (name: string): KernelFunc => tf.getKernel(name, "webgpu")!.kernelFunc;
  const configs: KernelConfig[] = batchMatMulOverrides(stock, tile, webgpu.webgpu_util.computeDispatch);
  for (const config of configs) {
    const original = tf.getKernel(config.kernelName, "webgpu")!;
    tf.unregisterKernel(config.kernelName, "webgpu");
    tf.registerKernel({ ...config, ...(original.setupFunc ? { setupFunc: original.setupFunc } : {}), [OURS]: true } as KernelConfig);
  }
  return configs.map((c) => c.kernelName);
}

/** DISTLAB_WEBGPU_MEAN_GRADIENT=stock keeps TF.js's. */
function installMeanGradient(tf: TfRegistry, env: NodeJS.ProcessEnv): string[] {
  if (env.DISTLAB_WEBGPU_MEAN_GRADIENT === "stock") return [];
  if ((tf.getGradient("Mean") as { [OURS]?: true } | undefined)?.[OURS]) return [];
  tf.registerGradient({ ...meanGradient(tf), [OURS]: true } as ReturnType<typeof meanGradient>);
  return ["Mean (gradient)"];
}

/** Installs after @tensorflow/tfjs-backend-webgpu is loaded; returns the kernels (and gradients) replaced now. */
export function installWebGpuOverrides(tf: TfRegistry, env: NodeJS.ProcessEnv = process.env): string[] {
  if (tf.getKernel("BatchMatMul", "webgpu") === undefined) return [];
  return [...installMatMul(tf, env), ...installMeanGradient(tf, env)];
}
