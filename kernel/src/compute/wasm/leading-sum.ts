/**
 * Sum over leading axes (a column sum) for the wasm backend.
 *
 * The stock kernel reduces along the innermost axes only, so a sum over
 * axis 0 of [rows, n] (every bias gradient: dy summed over the rows; the
 * position embedding's gradient, summed over the batch) first transposes x
 * with a copy, which costs far more than the sum (figures:
 * docs/compute.md, "Figures behind the code"). This adds the rows of x,
 * viewed as [rows, columns], in one pass, in row order: simd-kernels.ts's
 * columnSumBlocks (16 columns at a time in registers down all rows, which
 * beat adding each row into the output for 128 and 384 columns)
 * where the column count is a multiple of 16, columnSum (4 at a time) where
 * it is a multiple of 4, else JavaScript into double-precision
 * accumulators; where the native passes are built (../cpu-vector.ts), one
 * native pass (16 columns a vector on AVX-512) for every column count. Other
 * sums (innermost axes, mixed axes, non-float32) go to the stock kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuVector } from "../cpu-vector";
import { leadingAxes } from "../webgpu/leading-sum";
import { addressOf, heapF32, simdOf, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

export function leadingSumOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { x } = args.inputs as { x: TensorInfo };
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const k = leadingAxes(axis, x.shape.length);
    if (k === 0 || x.dtype !== "float32") return stock.get("Sum")(args) as TensorInfo;
    const rows = sizeOf(x.shape.slice(0, k));
    const columns = sizeOf(x.shape.slice(k));
    const out = backend.makeOutput(keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k), "float32");
    columnSumInto(backend, x, out, rows, columns);
    return out;
  };
  return { kernelName: "Sum", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** out [columns] = sum over the rows of x viewed as [rows, columns], rows in order (the passes above, fastest first). */
export function columnSumInto(backend: WasmBackend, x: TensorInfo, out: TensorInfo, rows: number, columns: number): void {
  const native = rows > 0 && columns > 0 ? cpuVector() : undefined;
  if (native) {
    native.columnSum(heapF32(backend, x), heapF32(backend, out));
    return;
  }
  const simd = columns % 4 === 0 ? simdOf(backend) : undefined;
  if (simd && columns % 16 === 0) {
    simd.columnSumBlocks(addressOf(backend, x), addressOf(backend, out), rows, 4 * columns);
    return;
  }
  if (simd) {
    heapF32(backend, out).fill(0);
    simd.columnSum(addressOf(backend, x), addressOf(backend, out), rows, 4 * columns);
    return;
  }
  const sums = new Float64Array(columns);
  const xs = heapF32(backend, x);
  for (let r = 0, o = 0; r < rows; r++, o += columns) {
    for (let c = 0; c < columns; c++) sums[c] += xs[o + c]!;
  }
  heapF32(backend, out).set(sums);
}
