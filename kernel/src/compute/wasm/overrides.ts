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
 *
 * The Distlab* entries are new kernels, not replacements: the fused ops of
 * ../fused/ call them where they are registered (webgpu has its own, in
 * ../webgpu/), and the gradients they return are the fused ops' own.
 * DISTLAB_WASM_FUSED_OPS=0 leaves them out (the fused ops then run stock
 * ops); DISTLAB_WASM_MATMUL=stock leaves out the two matMul overrides. Most of them, and the Sum override, run simd-kernels.ts's loops on
 * the backend's heap, or ../cpu-vector.ts's native passes where its addon is built (Add only
 * then).
 */
import type { KernelConfig, KernelFunc } from "@tensorflow/tfjs";
import { addOverride } from "./add";
import { batchMatMulOverride } from "./batch-mat-mul";
import { fusedMatMulOverride } from "./fused-mat-mul";
import { FROM_HEADS, fromHeadsKernel, TO_HEADS, toHeadsKernel } from "./attention-heads";
import { castOverride } from "./cast";
import { causalAttentionGradKernel, causalAttentionKernel } from "./causal-attention";
import { causalSoftmaxGradKernel, causalSoftmaxKernel } from "./causal-softmax";
import { gatherOverride } from "./gather";
import { geluGradKernel, geluKernel } from "./gelu";
import { identityOverride } from "./identity";
import { layerNormGradKernel, layerNormKernel } from "./layer-norm";
import { leadingSumOverride } from "./leading-sum";
import { LINEAR, linearKernel, RELU_GRAD, reluGradKernel } from "./linear";
import { powOverride } from "./pow";
import { softmaxCrossEntropyGradKernel, softmaxCrossEntropyKernel } from "./softmax-cross-entropy";
import { tanhOverride } from "./tanh";
import type { StockKernels } from "./tensor-info";
import { unsortedSegmentSumOverride } from "./unsorted-segment-sum";
import { CAUSAL_ATTENTION, CAUSAL_ATTENTION_GRAD } from "../webgpu/causal-attention";
import { CAUSAL_SOFTMAX, CAUSAL_SOFTMAX_GRAD } from "../webgpu/causal-softmax";
import { GELU, GELU_GRAD } from "../webgpu/gelu";
import { LAYER_NORM, LAYER_NORM_GRAD } from "../webgpu/layer-norm";
import { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from "../webgpu/softmax-cross-entropy";

type TfRegistry = Pick<typeof import("@tensorflow/tfjs"), "getKernel" | "registerKernel" | "unregisterKernel">;

/** Every override, by the kernel it replaces or adds. */
export const WASM_OVERRIDES: ReadonlyArray<{ kernelName: string; make: (stock: StockKernels) => KernelConfig }> = [
  { kernelName: "BatchMatMul", make: batchMatMulOverride },
  { kernelName: "_FusedMatMul", make: fusedMatMulOverride },
  { kernelName: "UnsortedSegmentSum", make: () => unsortedSegmentSumOverride() },
  { kernelName: "Pow", make: powOverride },
  { kernelName: "Identity", make: identityOverride },
  { kernelName: "Tanh", make: tanhOverride },
  { kernelName: "Cast", make: castOverride },
  { kernelName: "Sum", make: leadingSumOverride },
  { kernelName: "Add", make: addOverride },
  { kernelName: "GatherV2", make: gatherOverride },
  { kernelName: LAYER_NORM, make: layerNormKernel },
  { kernelName: LAYER_NORM_GRAD, make: layerNormGradKernel },
  { kernelName: GELU, make: geluKernel },
  { kernelName: GELU_GRAD, make: geluGradKernel },
  { kernelName: CAUSAL_SOFTMAX, make: causalSoftmaxKernel },
  { kernelName: CAUSAL_SOFTMAX_GRAD, make: causalSoftmaxGradKernel },
  { kernelName: CAUSAL_ATTENTION, make: causalAttentionKernel },
  { kernelName: CAUSAL_ATTENTION_GRAD, make: causalAttentionGradKernel },
  { kernelName: TO_HEADS, make: toHeadsKernel },
  { kernelName: FROM_HEADS, make: fromHeadsKernel },
  { kernelName: SOFTMAX_CROSS_ENTROPY, make: softmaxCrossEntropyKernel },
  { kernelName: SOFTMAX_CROSS_ENTROPY_GRAD, make: softmaxCrossEntropyGradKernel },
  { kernelName: LINEAR, make: linearKernel },
  { kernelName: RELU_GRAD, make: reluGradKernel },
];

/** Marks a config as ours, so installing twice (ranks re-initialised, a cell requiring tf again) is a no-op. */
const OURS = Symbol.for("distlab.compute.override");

/**
 * Installs the overrides once the wasm backend's kernels are registered
 * (i.e. @tensorflow/tfjs-backend-wasm has been required). Returns the names
 * installed now; an empty list when they were already in place or the wasm
 * backend is not loaded.
 */
export function installWasmOverrides(tf: TfRegistry, env: NodeJS.ProcessEnv = process.env): string[] {
  if (tf.getKernel("BatchMatMul", "wasm") === undefined) return [];
  const wanted = WASM_OVERRIDES.filter(({ kernelName }) => {
    if (kernelName.startsWith("Distlab")) return env.DISTLAB_WASM_FUSED_OPS !== "0";
    if (kernelName === "BatchMatMul" || kernelName === "_FusedMatMul") return env.DISTLAB_WASM_MATMUL !== "stock";
    return true;
  });
  const stockConfigs = new Map<string, KernelConfig>();
  for (const { kernelName } of wanted) {
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
  for (const { kernelName, make } of wanted) {
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
