/**
 * Layer norm over the last axis for the wasm backend, as JavaScript loops
 * over the heap: DistlabLayerNorm and DistlabLayerNormGrad (the names, and
 * the op around them, are ../fused/layer-norm.ts's; webgpu has the same
 * kernels in WGSL).
 *
 *   forward   x [rows, C] (any leading shape), gain [C], bias [C]
 *             y = (x - mean) rstd gain + bias,   rstd = 1 / sqrt(var + eps), per row
 *   backward  xhat = (x - mean) rstd,  g = dy gain
 *             dx = rstd (g - mean(g) - xhat mean(g xhat))     per row (mean and rstd recomputed)
 *             dgain = sum over rows of dy xhat,  dbias = sum over rows of dy
 *
 * The stock ops take about 30 kernels per layer norm and step (moments,
 * sub, rsqrt, mul, add and their gradients, with transposes for the column
 * sums), for each of the tiny GPT's nine, where this takes one pass each
 * way (figures: docs/compute.md, "Figures behind the code"). Rows whose
 * width is a multiple of 4 go through simd-kernels.ts's layerNorm and
 * layerNormGrad (f32x4, float32 sums; several times faster than the
 * JavaScript loops below); other widths through the
 * JavaScript loops (sums in double precision, rounded once). Where the native
 * passes are built (../cpu-vector.ts), both kernels are native passes at the
 * core's widest vectors, for every width.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuVector } from "../cpu-vector";
import { LAYER_NORM, LAYER_NORM_GRAD } from "../webgpu/layer-norm";
import { addressOf, heapF32, simdOf, sizeOf, type WasmBackend } from "./tensor-info";

type Args = Parameters<KernelFunc>[0];

/** DistlabLayerNorm: inputs x [..., C], gain [C], bias [C]; attrs epsilon -> y like x. */
export function layerNormKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { x, gain, bias } = args.inputs as { x: TensorInfo; gain: TensorInfo; bias: TensorInfo };
    const epsilon = (args.attrs as { epsilon: number }).epsilon;
    const width = x.shape[x.shape.length - 1]!;
    const rows = width === 0 ? 0 : sizeOf(x.shape) / width;
    const out = backend.makeOutput([...x.shape], "float32");
    const native = rows > 0 ? cpuVector() : undefined;
    if (native) {
      native.layerNorm(heapF32(backend, x), heapF32(backend, gain), heapF32(backend, bias), heapF32(backend, out), epsilon);
      return out;
    }
    const simd = width % 4 === 0 ? simdOf(backend) : undefined;
    if (simd) {
      simd.layerNorm(addressOf(backend, x), addressOf(backend, gain), addressOf(backend, bias), addressOf(backend, out), rows, 4 * width, 1 / width, epsilon);
      return out;
    }
    // Views after makeOutput: the allocation may have moved the heap.
    const y = heapF32(backend, out), xs = heapF32(backend, x), g = heapF32(backend, gain), b = heapF32(backend, bias);
    for (let r = 0, o = 0; r < rows; r++, o += width) {
      const { mean, rstd } = rowStatistics(xs, o, width, epsilon);
      for (let c = 0; c < width; c++) y[o + c] = (xs[o + c]! - mean) * rstd * g[c]! + b[c]!;
    }
    return out;
  };
  return { kernelName: LAYER_NORM, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** DistlabLayerNormGrad: inputs dy, x [..., C], gain [C]; attrs epsilon -> [dx like x, dgain [C], dbias [C]]. */
export function layerNormGradKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo[] => {
    const backend = args.backend as unknown as WasmBackend;
    const { dy, x, gain } = args.inputs as { dy: TensorInfo; x: TensorInfo; gain: TensorInfo };
    const epsilon = (args.attrs as { epsilon: number }).epsilon;
    const width = x.shape[x.shape.length - 1]!;
    const rows = width === 0 ? 0 : sizeOf(x.shape) / width;
    const dxInfo = backend.makeOutput([...x.shape], "float32");
    const dgainInfo = backend.makeOutput([width], "float32");
    const dbiasInfo = backend.makeOutput([width], "float32");
    const native = rows > 0 ? cpuVector() : undefined;
    if (native) {
      native.layerNormGrad(heapF32(backend, dy), heapF32(backend, x), heapF32(backend, gain), heapF32(backend, dxInfo), heapF32(backend, dgainInfo), heapF32(backend, dbiasInfo), epsilon);
      return [dxInfo, dgainInfo, dbiasInfo];
    }
    const simd = width % 4 === 0 ? simdOf(backend) : undefined;
    if (simd) {
      heapF32(backend, dgainInfo).fill(0);
      heapF32(backend, dbiasInfo).fill(0);
      simd.layerNormGrad(addressOf(backend, dy), addressOf(backend, x), addressOf(backend, gain), addressOf(backend, dxInfo), addressOf(backend, dgainInfo), addressOf(backend, dbiasInfo), rows, 4 * width, 1 / width, epsilon);
      return [dxInfo, dgainInfo, dbiasInfo];
    }
    const dx = heapF32(backend, dxInfo), xs = heapF32(backend, x), dys = heapF32(backend, dy), g = heapF32(backend, gain);
    const dgain = new Float64Array(width), dbias = new Float64Array(width);
    for (let r = 0, o = 0; r < rows; r++, o += width) {
      const { mean, rstd } = rowStatistics(xs, o, width, epsilon);
      let sumG = 0, sumGX = 0;
      for (let c = 0; c < width; c++) {
        const d = dys[o + c]!, xhat = (xs[o + c]! - mean) * rstd, gc = d * g[c]!;
        sumG += gc;
        sumGX += gc * xhat;
        dgain[c] += d * xhat;
        dbias[c] += d;
      }
      const meanG = sumG / width, meanGX = sumGX / width;
      for (let c = 0; c < width; c++) {
        const xhat = (xs[o + c]! - mean) * rstd;
        dx[o + c] = rstd * (dys[o + c]! * g[c]! - meanG - xhat * meanGX);
      }
    }
    heapF32(backend, dgainInfo).set(dgain);
    heapF32(backend, dbiasInfo).set(dbias);
    return [dxInfo, dgainInfo, dbiasInfo];
  };
  return { kernelName: LAYER_NORM_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** Mean and 1 / sqrt(variance + epsilon) of xs[offset, offset + width) (the fallback loops' per-row pass). */
function rowStatistics(xs: Float32Array, offset: number, width: number, epsilon: number): { mean: number; rstd: number } {
  let sum = 0;
  for (let c = 0; c < width; c++) sum += xs[offset + c]!;
  const mean = sum / width;
  let squares = 0;
  for (let c = 0; c < width; c++) { const d = xs[offset + c]! - mean; squares += d * d; }
  return { mean, rstd: 1 / Math.sqrt(squares / width + epsilon) };
}
