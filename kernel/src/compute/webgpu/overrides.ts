/**
 * The one list of kernel overrides for TensorFlow.js's webgpu backend and
 * their installation (same scheme as ../wasm/overrides.ts: stock kernels
 * captured first, replaced in the global registry, idempotent).
 */
import type { KernelConfig, KernelFunc } from "@tensorflow/tfjs";
import { batchMatMulOverrides, tileFromEnv } from "./batch-mat-mul";

type TfRegistry = Pick<typeof import("@tensorflow/tfjs"), "getKernel" | "registerKernel" | "unregisterKernel">;

const OURS = Symbol.for("distlab.compute.override");

/** Installs after @tensorflow/tfjs-backend-webgpu is loaded; returns the kernels replaced now. */
export function installWebGpuOverrides(tf: TfRegistry, env: NodeJS.ProcessEnv = process.env): string[] {
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
