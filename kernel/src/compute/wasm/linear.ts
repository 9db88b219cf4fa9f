/**
 * DistlabLinear for the wasm backend: y [rows, out] = x [rows, in] w [in, out]
 * + bias [out] in one product through the machine's BLAS, the bias written
 * into y before the product is added to it (batch-mat-mul.ts's gemmProduct,
 * cpu-blas.ts). The op around it is ../fused/linear.ts's, which calls it only
 * where a BLAS is open: on the WebAssembly kernel a separate add was the
 * faster form (docs/compute.md).
 *
 * Its gradient is registered per input (../fused/linear.ts): TF.js computes
 * only those on a path to what is differentiated, so a first layer's
 * x-gradient (data, no variable behind it) is never computed. tf.fused.matMul's
 * gradient computes every input's.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { gemmProduct } from "./batch-mat-mul";
import type { WasmBackend } from "./tensor-info";

export const LINEAR = "DistlabLinear";

export function linearKernel(): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { x, w, bias } = args.inputs as { x: TensorInfo; w: TensorInfo; bias: TensorInfo };
    return gemmProduct(args.backend as unknown as WasmBackend, x, w, false, false, bias);
  };
  return { kernelName: LINEAR, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
