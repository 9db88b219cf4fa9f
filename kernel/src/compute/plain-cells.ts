/**
 * distlab's kernel overrides for the notebook's own cells (not only ranks).
 *
 * A plain cell loads TensorFlow.js itself (`require("@tensorflow/tfjs")`,
 * `require("@tensorflow/tfjs-backend-wasm")`). After any @tensorflow
 * package is required, the wasm overrides are installed if the wasm
 * backend's kernels are registered by then. The kernel registry is global
 * to the process, so installing through the kernel's own copy of tf also
 * covers the copy the cell loaded. Installing is idempotent.
 */
import { installWasmOverrides } from "./wasm/overrides";

export function afterCellRequire(id: string): void {
  if (!id.startsWith("@tensorflow/")) return;
  try {
    installWasmOverrides(require("@tensorflow/tfjs") as typeof import("@tensorflow/tfjs"));
  } catch {
    // The cell's own tf works without the overrides (e.g. a tf version whose kernels differ); never fail its require.
  }
}
