/**
 * TensorFlow.js's webgpu backend in Node, through Dawn's Node binding (the
 * optional npm package `webgpu`).
 *
 * Dawn answers requestAdapter() with null within milliseconds where there is
 * no GPU or no Vulkan loader (docs/compute.md, "Figures behind the
 * code"); the timeout below only guards against a driver that hangs, so
 * automatic backend choice falls back to wasm without a noticeable wait.
 *
 * Choosing among several GPUs: Dawn's `adapter=NAME` option matches the
 * adapter's name, so it picks between different models but not between
 * identical cards (two adapters both named "NVIDIA H200"), and NVIDIA's
 * Vulkan driver ignores CUDA_VISIBLE_DEVICES. For one process per GPU, start
 * each rank in a private mount namespace where the other cards' device nodes
 * are hidden (docs/compute.md), so it sees exactly one adapter.
 */
import { readdirSync } from "node:fs";

/** What a GPU adapter reports about itself, for `%dist status` and the benchmarks. */
export interface WebGpuDevice {
  /** e.g. "nvidia nvidia-h200 (NVIDIA: 580.159.04 580.159.4.0)", as Dawn reported an H200. */
  description: string;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; adapterType?: string; backendType?: string };
}
interface GpuLike {
  requestAdapter(options?: object): Promise<GpuAdapterLike | null>;
}

/** How long to wait for an adapter before calling the GPU unusable (milliseconds). */
export const ADAPTER_TIMEOUT_MS = 5000;

/** NVIDIA, AMD/Intel (DRM render nodes) and WSL GPU device files; the mount-namespace adapter choice hides all but one. */
export function hasGpuDeviceNode(devices: string[] = safeList("/dev"), dri: string[] = safeList("/dev/dri")): boolean {
  return devices.some((name) => /^nvidia\d+$/.test(name) || name === "dxg") || dri.some((name) => name.startsWith("renderD"));
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

/**
 * Dawn options for this process: DISTLAB_WEBGPU_ADAPTER=NAME picks an
 * adapter by name; DISTLAB_WEBGPU_DAWN adds raw Dawn options, space-separated
 * (e.g. "enable-dawn-features=skip_validation,disable_robustness").
 */
export function dawnOptions(env: NodeJS.ProcessEnv = process.env): string[] {
  const name = env.DISTLAB_WEBGPU_ADAPTER;
  const extra = (env.DISTLAB_WEBGPU_DAWN ?? "").split(/\s+/).filter(Boolean);
  return [...(name ? [`adapter=${name}`] : []), ...extra];
}

export function describeAdapter(adapter: GpuAdapterLike): string {
  const info = adapter.info ?? {};
  // Dawn on NVIDIA/Vulkan reports the model in `device` ("nvidia-h200") and the driver in `description`.
  const name = info.device || info.description || "unknown GPU";
  const details = [info.adapterType, info.backendType, info.device ? info.description : undefined].filter(Boolean).join(", ");
  return `${info.vendor ? `${info.vendor} ` : ""}${name}${details ? ` (${details})` : ""}`;
}

/**
 * Makes `navigator.gpu` a Dawn instance and checks that it has a GPU
 * adapter. Throws (with the reason) when the package is missing, Dawn finds
 * no adapter, or the adapter is a CPU emulation, which is slower than wasm.
 */
export async function prepareWebGpu(options: { timeoutMs?: number } = {}): Promise<WebGpuDevice> {
  // Checked before loading Dawn, which otherwise prints a Vulkan warning into every rank's output on CPU machines.
  if (!hasGpuDeviceNode()) throw new Error("no GPU device node (/dev/nvidia*, /dev/dri/renderD*) on this machine");
  let dawn: { create(options: string[]): GpuLike; globals: Record<string, unknown> };
  try {
    dawn = require("webgpu");
  } catch (error) {
    throw new Error(`the npm package webgpu (Dawn) is not installed (${(error as Error).message.split("\n")[0]})`);
  }
  const scope = globalThis as { navigator?: { gpu?: GpuLike } };
  const gpu = scope.navigator?.gpu ?? dawn.create(dawnOptions());
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), options.timeoutMs ?? ADAPTER_TIMEOUT_MS); });
  const adapter = await Promise.race([gpu.requestAdapter({ powerPreference: "high-performance" }), timeout]).finally(() => clearTimeout(timer));
  if (adapter === null) throw new Error("Dawn found no GPU adapter (no GPU, driver or Vulkan loader on this machine)");
  if (adapter.info?.adapterType === "CPU") throw new Error(`the only WebGPU adapter is a CPU emulation (${describeAdapter(adapter)})`);
  // TF.js's webgpu backend registers itself only if navigator.gpu exists when it is first required.
  Object.assign(globalThis, dawn.globals);
  if (scope.navigator === undefined) {
    Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
  } else if (scope.navigator.gpu === undefined) {
    Object.defineProperty(scope.navigator, "gpu", { value: gpu, configurable: true });
  }
  return { description: describeAdapter(adapter) };
}
