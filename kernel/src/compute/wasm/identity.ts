/**
 * Identity for the wasm backend without a copy.
 *
 * TF.js's gradients call cast(x, "float32") on float32 tensors (Multiply's,
 * Sub's, ...), which runs Identity; the stock wasm kernel copies the whole
 * buffer each time. In a tiny-GPT training step that was 200 copies, 50 of
 * them [768, 512] (1.5 MiB each), a ninth of the step (docs/compute.md,
 * "Figures behind the code"). Tensor data
 * is immutable in TF.js (Variable.assign swaps the buffer, it never writes
 * into it), so the output can share the input's buffer with one more
 * reference, as the cpu backend's Identity and the wasm Reshape already do.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import type { StockKernels } from "./tensor-info";

interface RefCounting {
  incRef(dataId: object): void;
}

export function identityOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === "string") return stock.get("Identity")(args) as TensorInfo;
    (args.backend as unknown as RefCounting).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
  return { kernelName: "Identity", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
