/**
 * Cast for the wasm backend without a copy when the dtype does not change.
 *
 * TF.js's gradients cast float32 tensors to float32 (Multiply's, Sub's,
 * RealDiv's, ...). The stock wasm Cast copies the buffer whatever the
 * dtypes (it does not go through the Identity kernel that identity.ts
 * replaces): 88 copies per tiny-GPT step with the stock ops, 36 of them
 * [768, 128] and 8 [768, 512] (their time: docs/compute.md, "Figures
 * behind the code"). Tensor data is
 * immutable in TF.js, so, as in identity.ts, the
 * output shares the input's buffer with one more reference. Real
 * conversions keep the stock kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import type { StockKernels, WasmBackend } from "./tensor-info";

export function castOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { x } = args.inputs as { x: TensorInfo };
    const { dtype } = args.attrs as { dtype: string };
    if (dtype !== x.dtype || x.dtype === "string") return stock.get("Cast")(args) as TensorInfo;
    (args.backend as unknown as WasmBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
  return { kernelName: "Cast", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
