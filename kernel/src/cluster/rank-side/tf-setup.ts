/**
 * Loads TensorFlow.js inside a rank and picks its backend.
 *
 * The choice and the kernel overrides live in ../compute/backend-choice.ts:
 * the named backend or, when none is named, webgpu where Dawn finds a GPU,
 * tensorflow (tfjs-node, only if the user installed it), wasm, cpu. The
 * wasm backend gets distlab's faster kernels (../compute/wasm/overrides.ts).
 */
import { chooseBackend } from "../../compute/backend-choice";
import type { TfBackendName } from "../../compute/backend-names";

type Tf = typeof import("@tensorflow/tfjs");

export interface LoadedTf {
  tf: Tf;
  /** The backend actually in use, e.g. "wasm". */
  backend: string;
  /** Where it computes, e.g. "cpu:wasm simd" or "gpu:nvidia nvidia-h200 (NVIDIA: 580.159.04 ...)". */
  device: string;
}

export async function loadTf(requested: TfBackendName | undefined): Promise<LoadedTf> {
  const tf = require("@tensorflow/tfjs") as Tf;
  const chosen = await chooseBackend(tf, requested);
  return { tf, backend: chosen.backend, device: chosen.device };
}
