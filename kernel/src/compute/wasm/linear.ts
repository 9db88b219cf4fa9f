/**
 * DistlabLinear for the wasm backend: y [rows, out] = act(x [rows, in] w [in, out]
 * + bias [out]), act = identity or relu (attr `relu` 0 or 1): one product
 * through the machine's BLAS, then one pass adding the bias and applying
 * relu (batch-mat-mul.ts's biasedProduct, shared with _FusedMatMul). The op
 * around it is ../fused/linear.ts's, which calls it only where a BLAS is
 * open: on the WebAssembly kernel a separate add was the faster form
 * (docs/compute.md).
 *
 * Its gradient is registered per input (../fused/linear.ts): TF.js computes
 * only those on a path to what is differentiated, so a first layer's
 * x-gradient (data, no variable behind it) is never computed; tf.fused.matMul's
 * gradient computes every input's. With relu, the gradient first masks dy by
 * y > 0 and sums the bias gradient in the same pass (DistlabReluGrad, where
 * tf.relu's gradient takes a Step and a Multiply, and the bias a Sum).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuVector } from "../cpu-vector";
import { biasedProduct } from "./batch-mat-mul";
import { columnSumInto } from "./leading-sum";
import { addressOf, heapF32, simdOf, sizeOf, type WasmBackend } from "./tensor-info";

export const LINEAR = "DistlabLinear";
export const RELU_GRAD = "DistlabReluGrad";

export function linearKernel(): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { x, w, bias } = args.inputs as { x: TensorInfo; w: TensorInfo; bias: TensorInfo };
    return biasedProduct(args.backend as unknown as WasmBackend, x, w, false, false, bias, Boolean((args.attrs as { relu?: number }).relu));
  };
  return { kernelName: LINEAR, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/**
 * DistlabReluGrad: inputs dy and relu's output y [rows, n] -> [dz, dbias]: dz = dy where y > 0,
 * else 0, and dbias [n] = dz summed over the rows: the layer's two gradients that need only dy,
 * in one native pass where the addon is built (../cpu-vector.ts), else a masking pass and the
 * leading-axes sum's. (A NaN output gets a zero gradient here; tf.relu's gradient, dy step(x),
 * gives it NaN.)
 */
export function reluGradKernel(): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo[] => {
    const { dy, y } = args.inputs as { dy: TensorInfo; y: TensorInfo };
    const backend = args.backend as unknown as WasmBackend;
    const columns = y.shape[y.shape.length - 1]!;
    const count = sizeOf(y.shape), rows = columns === 0 ? 0 : count / columns;
    const out = backend.makeOutput(y.shape, "float32");
    const dbias = backend.makeOutput([columns], "float32");
    const native = rows > 0 ? cpuVector() : undefined;
    if (native) {
      native.reluGradSum(heapF32(backend, dy), heapF32(backend, y), heapF32(backend, out), heapF32(backend, dbias));
      return [out, dbias];
    }
    const simd = simdOf(backend), head = simd ? count & ~3 : 0;
    if (simd && head > 0) simd.reluGrad(addressOf(backend, dy), addressOf(backend, y), addressOf(backend, out), 4 * head);
    if (head < count) {
      const dys = heapF32(backend, dy), ys = heapF32(backend, y), outs = heapF32(backend, out);
      for (let i = head; i < count; i++) outs[i] = ys[i]! > 0 ? dys[i]! : 0;
    }
    if (columns > 0) columnSumInto(backend, out, dbias, rows, columns);
    return [out, dbias];
  };
  return { kernelName: RELU_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
