/**
 * _FusedMatMul (matMul + bias + activation in one kernel, what tf.fused.matMul
 * and tf.layers' Dense use) for the wasm backend.
 *
 * The stock kernel has the same slow scalar path as BatchMatMul for
 * transposed operands and several batches; this routes those cases through
 * explicit transposes to the fast one-batch kernel, keeping the fusion: the
 * bias ([n]) and activation apply row by row, so they are the same per
 * 2-D product.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { broadcastBatch, multiplyPlain, plainOperands } from "./batch-mat-mul";
import { dispose, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

export function fusedMatMulOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const inputs = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    const attrs = args.attrs as { transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number };
    const { a, b } = inputs;
    const stockFused = stock.get("_FusedMatMul");
    const single = sizeOf(a.shape.slice(0, -2)) === 1 && sizeOf(b.shape.slice(0, -2)) === 1;
    // A prelu weight tensor of more than one row would differ per batch; leave that to the stock kernel.
    const preluPerRow = inputs.preluActivationWeights === undefined || inputs.preluActivationWeights.shape.length <= 1;
    if (a.dtype !== "float32" || (single && !attrs.transposeA && !attrs.transposeB) || !preluPerRow) {
      return stockFused(args) as TensorInfo;
    }
    const ops = plainOperands(stock, backend, a, b, attrs.transposeA, attrs.transposeB);
    if (ops === undefined) return stockFused(args) as TensorInfo;
    const outShape = [...broadcastBatch(a.shape.slice(0, -2), b.shape.slice(0, -2)), ops.m, ops.n];
    // The stock kernel reads rank-3 operands: [1, rows, cols].
    const product2d = (x: TensorInfo, y: TensorInfo): TensorInfo => {
      const x3 = { ...x, shape: [1, ...x.shape] };
      const y3 = { ...y, shape: [1, ...y.shape] };
      const out = stockFused({
        inputs: { ...inputs, a: x3, b: y3 },
        backend: args.backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      }) as TensorInfo;
      return { ...out, shape: out.shape.slice(1) };
    };
    const out = multiplyPlain(backend, stock, ops, outShape, product2d);
    dispose(backend, ...ops.temporaries);
    return out;
  };
  return { kernelName: "_FusedMatMul", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
