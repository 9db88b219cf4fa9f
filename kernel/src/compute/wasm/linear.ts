/**
 * DistlabLinear for the wasm backend: y [rows, out] = act(x [rows, in] w [in, out]
 * + bias [out]), act = identity or relu (attr `relu` 0 or 1): one product
 * through the machine's BLAS (batch-mat-mul.ts's gemmProduct, cpu-blas.ts),
 * then one SIMD pass that adds the bias to every row and applies relu in
 * place (for `out` a multiple of 4; otherwise the bias is written into y
 * before the product is added to it and relu is a JavaScript loop). The op
 * around it is ../fused/linear.ts's, which calls it only where a BLAS is
 * open: on the WebAssembly kernel a separate add was the faster form
 * (docs/compute.md).
 *
 * Its gradient is registered per input (../fused/linear.ts): TF.js computes
 * only those on a path to what is differentiated, so a first layer's
 * x-gradient (data, no variable behind it) is never computed; tf.fused.matMul's
 * gradient computes every input's. With relu, the gradient first masks dy by
 * y > 0 (DistlabReluGrad, one pass where tf.relu's gradient takes a Step and
 * a Multiply).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { gemmProduct } from "./batch-mat-mul";
import { addressOf, heapF32, simdOf, sizeOf, type WasmBackend } from "./tensor-info";

export const LINEAR = "DistlabLinear";
export const RELU_GRAD = "DistlabReluGrad";

export function linearKernel(): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { x, w, bias } = args.inputs as { x: TensorInfo; w: TensorInfo; bias: TensorInfo };
    const backend = args.backend as unknown as WasmBackend;
    const relu = (args.attrs as { relu?: number }).relu ? 1 : 0;
    const simd = simdOf(backend);
    const [rows, columns] = [x.shape[0]!, w.shape[1]!];
    if (simd && columns % 4 === 0) {
      // the product alone, then one SIMD pass adds the bias to every row (and applies relu)
      const y = gemmProduct(backend, x, w, false, false);
      if (rows > 0 && columns > 0) simd.addRows(addressOf(backend, y), addressOf(backend, bias), rows, 4 * columns, relu);
      return y;
    }
    // rows of other widths: the bias written into y before the product is added (cpu-blas.ts), relu in JavaScript
    const y = gemmProduct(backend, x, w, false, false, bias);
    if (relu) {
      const values = heapF32(backend, y);
      for (let i = 0; i < values.length; i++) if (values[i]! < 0) values[i] = 0; // NaN stays NaN, as in tf.relu
    }
    return y;
  };
  return { kernelName: LINEAR, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/**
 * DistlabReluGrad: dx = dy where y > 0, else 0, for dy and relu's output y of one shape. (A NaN
 * output gets a zero gradient here; tf.relu's gradient, dy step(x), gives it NaN.)
 */
export function reluGradKernel(): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { dy, y } = args.inputs as { dy: TensorInfo; y: TensorInfo };
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(y.shape, "float32");
    const count = sizeOf(y.shape), simd = simdOf(backend), head = simd ? count & ~3 : 0;
    if (simd && head > 0) simd.reluGrad(addressOf(backend, dy), addressOf(backend, y), addressOf(backend, out), 4 * head);
    if (head < count) {
      const dys = heapF32(backend, dy), ys = heapF32(backend, y), outs = heapF32(backend, out);
      for (let i = head; i < count; i++) outs[i] = ys[i]! > 0 ? dys[i]! : 0;
    }
    return out;
  };
  return { kernelName: RELU_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
