/**
 * The one list of kernel overrides for TensorFlow.js's wasm backend, and
 * the function that installs them.
 *
 * Each override is its own file in this folder. Installing captures the
 * stock kernels first (an override may call the stock kernel for the cases
 * it does not improve), then replaces them in tf's global kernel registry,
 * which every copy of @tensorflow/tfjs-core in the process shares. It works
 * before or after the backend is initialised: the stock setup function is
 * kept, so the stock kernel is ready whenever the override calls it.
 */
import type { KernelConfig, KernelFunc } from "@tensorflow/tfjs";
import { batchMatMulOverride } from "./batch-mat-mul";
import { fusedMatMulOverride } from "./fused-mat-mul";
import { identityOverride } from "./identity";
import { powOverride } from "./pow";
import { tanhOverride } from "./tanh";
import type { StockKernels } from "./tensor-info";
import { unsortedSegmentSumOverride } from "./unsorted-segment-sum";

type TfRegistry = Pick<typeof import("@tensorflow/tfjs"), "getKernel" | "registerKernel" | "unregisterKernel">;

/** Every override, by the kernel it replaces or adds. */
export const WASM_OVERRIDES: ReadonlyArray<{ kernelName: string; make: (stock: StockKernels) => KernelConfig }> = [
  { kernelName: "BatchMatMul", make: batchMatMulOverride },
  { kernelName: "_FusedMatMul", make: fusedMatMulOverride },
  { kernelName: "UnsortedSegmentSum", make: () => unsortedSegmentSumOverride() },
  { kernelName: "Pow", make: powOverride },
  { kernelName: "Identity", make: identityOverride },
  { kernelName: "Tanh", make: tanhOverride },
];

/** Marks a config as ours, so installing twice (ranks re-initialised, a cell requiring tf again) is a no-op. */
const OURS = Symbol.for("distlab.compute.override");

/**
 * Installs the overrides once the wasm backend's kernels are registered
 * (i.e. @tensorflow/tfjs-backend-wasm has been required). Returns the names
 * installed now; an empty list when they were already in place or the wasm
 * backend is not loaded.
 */
export function installWasmOverrides(tf: TfRegistry): string[] {
  if (tf.getKernel("BatchMatMul", "wasm") === undefined) return [];
  const stockConfigs = new Map<string, KernelConfig>();
  for (const { kernelName } of WASM_OVERRIDES) {
    const config = tf.getKernel(kernelName, "wasm");
    if (config && (config as { [OURS]?: true })[OURS]) return [];
    if (config) stockConfigs.set(kernelName, config);
  }
  const stock: StockKernels = {
    get(name: string): KernelFunc {
      const config = stockConfigs.get(name) ?? tf.getKernel(name, "wasm");
      if (!config) throw new Error(`distlab compute: the wasm backend has no ${name} kernel`);
      return config.kernelFunc;
    },
  };
  const installed: string[] = [];
  for (const { kernelName, make } of WASM_OVERRIDES) {
    const override = make(stock);
    const original = stockConfigs.get(kernelName);
    const config: KernelConfig & { [OURS]: true } = {
      ...override,
      ...(original?.setupFunc ? { setupFunc: original.setupFunc } : {}),
      ...(original?.disposeFunc ? { disposeFunc: original.disposeFunc } : {}),
      [OURS]: true,
    };
    if (original) tf.unregisterKernel(kernelName, "wasm");
    tf.registerKernel(config);
    installed.push(kernelName);
  }
  return installed;
}
