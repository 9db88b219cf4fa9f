/**
 * Layer norm over the last axis as WebGPU kernels: DistlabLayerNorm (one
 * dispatch) and DistlabLayerNormGrad (two). The op around them, and the
 * same math in stock ops, is ../fused/layer-norm.ts.
 *
 *   forward   y = (x - mean) rstd gain + bias          rstd = 1 / sqrt(var + eps), per row of x [rows, C]
 *   backward  xhat = (x - mean) rstd,  g = dy gain
 *             dx = rstd (g - mean(g) - xhat mean(g xhat))     one workgroup per row; also writes (mean, rstd)
 *             dgain = sum over rows of dy xhat, dbias = sum over rows of dy      16 columns per workgroup
 *
 * Stock TF.js ops take 30 dispatches per layer norm and step (moments,
 * sub, rsqrt, mul, add and their gradients, plus transposes for the
 * column sums): about 270 of the tiny GPT's.
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, splitGroups, type WebGpuBackendInternals } from "./dispatch";
import { flatGridMain, wgslBindings, type WgslBinding } from "./wgsl-preamble";
import { workgroupReduceWgsl } from "./wgsl-workgroup-reduce";

/** Threads per row (a power of two); the tiny GPT's rows have 128 channels. */
const ROW_THREADS = 64;
/** Column sums: COLUMNS adjacent columns per workgroup, LANES rows summed at once. */
const COLUMNS = 16;
const LANES = 16;

const ROW_REDUCE = /* wgsl */ `
${workgroupReduceWgsl(ROW_THREADS)}
fn rowSum(lid: u32, value: f32) -> f32 { return workgroupReduce(lid, value, false); }`;

/** mean and rstd of row `row` (every thread of the workgroup gets both); rows past the end read nothing. */
const ROW_STATS = /* wgsl */ `
fn rowStats(row: u32, valid: bool, lid: u32) -> vec2<f32> {
  let width = s.width;
  var sum = 0.0;
  if (valid) { for (var c = lid; c < width; c = c + ${ROW_THREADS}u) { sum = sum + x[row * width + c]; } }
  let mean = rowSum(lid, sum) / f32(width);
  var squares = 0.0;
  if (valid) { for (var c = lid; c < width; c = c + ${ROW_THREADS}u) { let d = x[row * width + c] - mean; squares = squares + d * d; } }
  let variance = rowSum(lid, squares) / f32(width);
  return vec2<f32>(mean, inverseSqrt(variance + s.eps));
}`;

const SIZES = /* wgsl */ `struct Sizes { rows: u32, width: u32, eps: f32, unused: u32 }`;

/** A one-workgroup-per-row shader: `body` sees `row`, `valid` (a real row), `lid`, rowSum and rowStats. */
const rowKernel = (bindings: readonly WgslBinding[], body: string) => /* wgsl */ `
${SIZES}
${wgslBindings(bindings)}
${ROW_REDUCE}
${ROW_STATS}
${flatGridMain(ROW_THREADS, /* wgsl */ `
  let row = group;
  let valid = row < s.rows;${body}`)}`;

const FORWARD = rowKernel([["x", "read"], ["gain", "read"], ["bias", "read"], ["y", "read_write"], ["s", "uniform", "Sizes"]], /* wgsl */ `
  let stats = rowStats(row, valid, lid);
  if (!valid) { return; }
  for (var c = lid; c < s.width; c = c + ${ROW_THREADS}u) {
    let i = row * s.width + c;
    y[i] = (x[i] - stats.x) * stats.y * gain[c] + bias[c];
  }`);

const BACKWARD_ROWS = rowKernel([["dy", "read"], ["x", "read"], ["gain", "read"], ["dx", "read_write"], ["stats", "read_write"], ["s", "uniform", "Sizes"]], /* wgsl */ `
  let meanRstd = rowStats(row, valid, lid);
  var sumG = 0.0;
  var sumGXhat = 0.0;
  if (valid) {
    for (var c = lid; c < s.width; c = c + ${ROW_THREADS}u) {
      let i = row * s.width + c;
      let g = dy[i] * gain[c];
      sumG = sumG + g;
      sumGXhat = sumGXhat + g * ((x[i] - meanRstd.x) * meanRstd.y);
    }
  }
  let meanG = rowSum(lid, sumG) / f32(s.width);
  let meanGXhat = rowSum(lid, sumGXhat) / f32(s.width);
  if (!valid) { return; }
  for (var c = lid; c < s.width; c = c + ${ROW_THREADS}u) {
    let i = row * s.width + c;
    let xhat = (x[i] - meanRstd.x) * meanRstd.y;
    dx[i] = meanRstd.y * (dy[i] * gain[c] - meanG - xhat * meanGXhat);
  }
  if (lid == 0u) { stats[2u * row] = meanRstd.x; stats[2u * row + 1u] = meanRstd.y; }`);

const BACKWARD_COLUMNS = /* wgsl */ `
${SIZES}
${wgslBindings([["dy", "read"], ["x", "read"], ["stats", "read"], ["dgain", "read_write"], ["dbias", "read_write"], ["s", "uniform", "Sizes"]])}
var<workgroup> sumsGain: array<f32, ${COLUMNS * LANES}>;
var<workgroup> sumsBias: array<f32, ${COLUMNS * LANES}>;
${flatGridMain(COLUMNS * LANES, /* wgsl */ `
  let column = group * ${COLUMNS}u + lid % ${COLUMNS}u;
  let lane = lid / ${COLUMNS}u;
  var sumGain = 0.0;
  var sumBias = 0.0;
  if (column < s.width) {
    for (var row = lane; row < s.rows; row = row + ${LANES}u) {
      let i = row * s.width + column;
      let d = dy[i];
      sumGain = sumGain + d * ((x[i] - stats[2u * row]) * stats[2u * row + 1u]);
      sumBias = sumBias + d;
    }
  }
  sumsGain[lid] = sumGain;
  sumsBias[lid] = sumBias;
  workgroupBarrier();
  for (var stride = ${(COLUMNS * LANES) / 2}u; stride >= ${COLUMNS}u; stride = stride >> 1u) {
    if (lid < stride) {
      sumsGain[lid] = sumsGain[lid] + sumsGain[lid + stride];
      sumsBias[lid] = sumsBias[lid] + sumsBias[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid < ${COLUMNS}u && column < s.width) { dgain[column] = sumsGain[lid]; dbias[column] = sumsBias[lid]; }`)}`;

export const LAYER_NORM = "DistlabLayerNorm";
export const LAYER_NORM_GRAD = "DistlabLayerNormGrad";

type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

function sizes(backend: WebGpuBackendInternals, x: TensorInfo, epsilon: number): { rows: number; width: number; uniform: object } {
  const width = x.shape[x.shape.length - 1]!;
  const rows = x.shape.reduce((p, d) => p * d, 1) / width;
  const words = new ArrayBuffer(16);
  new Uint32Array(words, 0, 2).set([rows, width]);
  new Float32Array(words, 8, 1)[0] = epsilon;
  return { rows, width, uniform: constantUniform(backend.device, words) };
}

/**
 * The two kernels for the webgpu registry. `submitEvery` reads TF.js's
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE at call time.
 *   DistlabLayerNorm      inputs x [..., C], gain [C], bias [C]; attrs epsilon -> y like x
 *   DistlabLayerNormGrad  inputs dy, x, gain; attrs epsilon -> [dx, dgain, dbias]
 */
export function layerNormKernels(submitEvery: () => number): KernelConfig[] {
  const forward = ({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { x, gain, bias } = inputs as { x: TensorInfo; gain: TensorInfo; bias: TensorInfo };
    const { rows, uniform } = sizes(b, x, attrs!.epsilon as number);
    const y = newOutput(b, x.shape) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, FORWARD), [x, gain, bias, y, { buffer: uniform }], splitGroups(rows), submitEvery(), LAYER_NORM);
    return y;
  };
  const backward = ({ inputs, backend, attrs }: KernelArgs): TensorInfo[] => {
    const b = backend as WebGpuBackendInternals;
    const { dy, x, gain } = inputs as { dy: TensorInfo; x: TensorInfo; gain: TensorInfo };
    const { rows, width, uniform } = sizes(b, x, attrs!.epsilon as number);
    const dx = newOutput(b, x.shape) as TensorInfo;
    const stats = newOutput(b, [rows, 2]) as TensorInfo; // (mean, rstd) per row, for the column sums
    const dgain = newOutput(b, [width]) as TensorInfo;
    const dbias = newOutput(b, [width]) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, BACKWARD_ROWS), [dy, x, gain, dx, stats, { buffer: uniform }], splitGroups(rows), submitEvery(), LAYER_NORM_GRAD);
    recordDispatch(b, pipelineFor(b.device, BACKWARD_COLUMNS), [dy, x, stats, dgain, dbias, { buffer: uniform }], [Math.ceil(width / COLUMNS), 1], submitEvery(), LAYER_NORM_GRAD);
    (b as unknown as { disposeData(dataId: object): void }).disposeData(stats.dataId);
    return [dx, dgain, dbias];
  };
  return [
    { kernelName: LAYER_NORM, backendName: "webgpu", kernelFunc: forward as never },
    { kernelName: LAYER_NORM_GRAD, backendName: "webgpu", kernelFunc: backward as never },
  ];
}
