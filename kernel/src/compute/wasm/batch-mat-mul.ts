/**
 * BatchMatMul for the wasm backend through the machine's BLAS (cpu-blas.ts) where
 * there is one, else distlab's SIMD kernel (gemm.ts).
 *
 * The stock kernel multiplies through XNNPACK only for un-transposed
 * operands with one batch; with transposeA or transposeB (what backprop
 * uses: dW = x^T dy, dx = dy W^T) or several batches it falls to a scalar
 * loop, an order of magnitude slower. gemm.ts folds the transposes into the
 * packing it does anyway and runs at about the same speed for every case
 * (figures: docs/compute.md, "Figures behind the code").
 *
 * Batches: equal batch sizes multiply pairwise; a batch of 1 on either side
 * is shared (its packing done once when it is the right operand). Batch
 * shapes that broadcast in other ways ([2, 1] x [1, 3]) keep the stock
 * kernel, as do non-float32 operands. DISTLAB_WASM_MATMUL=stock leaves this
 * override out (overrides.ts), for comparisons.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuBlas } from "../cpu-blas";
import { cpuVector } from "../cpu-vector";
import { wasmGemm, type WasmGemm } from "./gemm";
import { addressOf, heapF32, simdOf, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

/** numpy-style broadcast of two batch shapes of equal size or where one has size 1. */
export function broadcastBatch(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const pad = (s: readonly number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const [pa, pb] = [pad(a), pad(b)];
  return pa.map((d, i) => Math.max(d, pb[i]!));
}

/** Whether the override handles this product rather than the stock kernel. */
export function gemmApplies(a: TensorInfo, b: TensorInfo): boolean {
  if (a.dtype !== "float32" || b.dtype !== "float32") return false;
  const batchA = sizeOf(a.shape.slice(0, -2)), batchB = sizeOf(b.shape.slice(0, -2));
  return batchA === batchB || batchA === 1 || batchB === 1;
}

/**
 * A new [...batch, m, n] tensor = op(a) op(b) (+ bias [n]), for operands
 * gemmApplies accepted.
 */
export function gemmProduct(backend: WasmBackend, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, bias?: TensorInfo): TensorInfo {
  const batchA = sizeOf(a.shape.slice(0, -2)), batchB = sizeOf(b.shape.slice(0, -2));
  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const shape = { m: transposeA ? aCols : aRows, k: transposeA ? aRows : aCols, n: transposeB ? bRows : bCols, transposeA, transposeB };
  const { m, k, n } = shape;
  const out = backend.makeOutput([...broadcastBatch(a.shape.slice(0, -2), b.shape.slice(0, -2)), m, n], "float32");
  // Views taken after the last allocation on the backend's heap (it may move when it grows).
  const aData = heapF32(backend, a), bData = heapF32(backend, b), outData = heapF32(backend, out);
  const biasOperand = bias ? { data: heapF32(backend, bias), offset: 0 } : undefined;
  // the machine's BLAS where there is one (cpu-blas.ts), else the WebAssembly SIMD kernel
  const gemm: Pick<WasmGemm, "multiply"> = cpuBlas() ?? wasmGemm();
  for (let i = 0; i < Math.max(batchA, batchB); i++) {
    gemm.multiply(
      { data: aData, offset: batchA === 1 ? 0 : i * m * k },
      { data: bData, offset: batchB === 1 ? 0 : i * k * n },
      { data: outData, offset: i * m * n },
      shape, biasOperand, batchB === 1 && i > 0,
    );
  }
  return out;
}

/**
 * gemmProduct's result with a bias [n] added to every row and, with `relu`, relu applied in place
 * (what _FusedMatMul and DistlabLinear compute). The product runs alone and one pass adds the
 * bias and applies relu: native where the vector passes are built (../cpu-vector.ts's addRows, 16
 * lanes on AVX-512), else for n a multiple of 4 simd-kernels.ts's addRows; otherwise the bias
 * starts the product (the WebAssembly kernel's accumulators, the BLAS's beta = 1) and relu is a
 * JavaScript loop.
 */
export function biasedProduct(backend: WasmBackend, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, bias: TensorInfo, relu: boolean): TensorInfo {
  const n = sizeOf(bias.shape);
  const native = n > 0 ? cpuVector() : undefined;
  if (native) {
    const product = gemmProduct(backend, a, b, transposeA, transposeB);
    if (sizeOf(product.shape) > 0) native.addRows(heapF32(backend, product), heapF32(backend, bias), relu);
    return product;
  }
  const simd = simdOf(backend);
  if (simd && n % 4 === 0) {
    const product = gemmProduct(backend, a, b, transposeA, transposeB);
    const rows = n > 0 ? sizeOf(product.shape) / n : 0;
    if (rows > 0) simd.addRows(addressOf(backend, product), addressOf(backend, bias), rows, 4 * n, relu ? 1 : 0);
    return product;
  }
  const product = gemmProduct(backend, a, b, transposeA, transposeB, bias);
  if (relu) reluInPlace(backend, product);
  return product;
}

/** x = max(x, 0) over a float32 tensor, in place (NaN stays NaN, as in tf.relu). */
export function reluInPlace(backend: WasmBackend, x: TensorInfo): void {
  const values = heapF32(backend, x);
  for (let i = 0; i < values.length; i++) if (values[i]! < 0) values[i] = 0;
}

export function batchMatMulOverride(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]): TensorInfo => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!gemmApplies(a, b)) return stock.get("BatchMatMul")(args) as TensorInfo;
    return gemmProduct(args.backend as unknown as WasmBackend, a, b, transposeA, transposeB);
  };
  return { kernelName: "BatchMatMul", backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
