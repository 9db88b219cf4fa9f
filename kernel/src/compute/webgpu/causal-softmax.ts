/**
 * Attention's causal softmax as one WebGPU dispatch each way:
 * DistlabCausalSoftmax and DistlabCausalSoftmaxGrad. The op around them, and
 * the same math in stock ops, is ../fused/causal-softmax.ts.
 *
 *   scores [..., T, T] (query i, key j):  y = softmax_j(scale s + (j > i ? -1e9 : 0))
 *   ds = scale y (dy - sum_j dy y)
 *
 * Stock ops take 7 dispatches per attention and step (the scale, the mask,
 * softmax and their gradients).
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, splitGroups, type WebGpuBackendInternals } from "./dispatch";
import { workgroupReduceWgsl } from "./wgsl-workgroup-reduce";

/** Threads per row (a power of two); the tiny GPT's rows have 64 keys. */
const ROW_THREADS = 64;

const COMMON = /* wgsl */ `
struct Sizes { rows: u32, keys: u32, scale: f32, unused: u32 }
@group(0) @binding(2) var<uniform> s: Sizes;
${workgroupReduceWgsl(ROW_THREADS)}`;

const FORWARD = /* wgsl */ `
@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${COMMON}
fn masked(row: u32, j: u32) -> f32 {
  // The same sum as scale * s + mask with mask = -1e9 above the diagonal.
  return scores[row * s.keys + j] * s.scale + select(0.0, -1e9, j > row % s.keys);
}
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * groups.x;
  let valid = row < s.rows;
  var biggest = -3.4e38;
  if (valid) { for (var j = lid; j < s.keys; j = j + ${ROW_THREADS}u) { biggest = max(biggest, masked(row, j)); } }
  let rowMax = workgroupReduce(lid, biggest, true);
  var sum = 0.0;
  if (valid) { for (var j = lid; j < s.keys; j = j + ${ROW_THREADS}u) { sum = sum + exp(masked(row, j) - rowMax); } }
  let total = workgroupReduce(lid, sum, false);
  if (!valid) { return; }
  for (var j = lid; j < s.keys; j = j + ${ROW_THREADS}u) { y[row * s.keys + j] = exp(masked(row, j) - rowMax) / total; }
}`;

const BACKWARD = /* wgsl */ `
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read_write> ds: array<f32>;
${COMMON}
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * groups.x;
  let valid = row < s.rows;
  var dot = 0.0;
  if (valid) { for (var j = lid; j < s.keys; j = j + ${ROW_THREADS}u) { let i = row * s.keys + j; dot = dot + dy[i] * y[i]; } }
  let total = workgroupReduce(lid, dot, false);
  if (!valid) { return; }
  for (var j = lid; j < s.keys; j = j + ${ROW_THREADS}u) { let i = row * s.keys + j; ds[i] = (y[i] * (dy[i] - total)) * s.scale; }
}`;

export const CAUSAL_SOFTMAX = "DistlabCausalSoftmax";
export const CAUSAL_SOFTMAX_GRAD = "DistlabCausalSoftmaxGrad";

type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

/**
 * The two kernels for the webgpu registry:
 *   DistlabCausalSoftmax      inputs scores [..., T, T]; attrs scale -> y like scores
 *   DistlabCausalSoftmaxGrad  inputs y, dy; attrs scale -> dscores like y
 */
export function causalSoftmaxKernels(submitEvery: () => number): KernelConfig[] {
  const rowwise = (code: string, name: string) => ({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { scores, y, dy } = inputs as { scores?: TensorInfo; y?: TensorInfo; dy?: TensorInfo };
    const input = (scores ?? y)!;
    const keys = input.shape[input.shape.length - 1]!;
    const rows = input.shape.reduce((p, d) => p * d, 1) / keys;
    const out = newOutput(b, input.shape) as TensorInfo;
    if (rows === 0 || keys === 0) return out;
    const words = new ArrayBuffer(16);
    new Uint32Array(words, 0, 2).set([rows, keys]);
    new Float32Array(words, 8, 1)[0] = attrs!.scale as number;
    const bindings = [input, out, { buffer: constantUniform(b.device, words) }, ...(dy ? [dy] : [])];
    recordDispatch(b, pipelineFor(b.device, code), bindings, splitGroups(rows), submitEvery(), name);
    return out;
  };
  return [
    { kernelName: CAUSAL_SOFTMAX, backendName: "webgpu", kernelFunc: rowwise(FORWARD, CAUSAL_SOFTMAX) as never },
    { kernelName: CAUSAL_SOFTMAX_GRAD, backendName: "webgpu", kernelFunc: rowwise(BACKWARD, CAUSAL_SOFTMAX_GRAD) as never },
  ];
}
