/**
 * Mean softmax cross-entropy of logits [rows, classes] against int32 class
 * ids [rows] as WebGPU kernels: DistlabSoftmaxCrossEntropy (the scalar
 * loss, one dispatch) and DistlabSoftmaxCrossEntropyGrad (dlogits, one).
 * The op around them, and the same math in stock ops, is
 * ../fused/cross-entropy.ts.
 *
 *   loss = mean over rows of (logsumexp(logits_r) - logits_r[label_r])
 *   dlogits_r = dy / rows (softmax(logits_r) - onehot(label_r))
 * A label outside 0..classes-1 is an all-zero one-hot row, as tf.oneHot
 * makes it: the row adds 0 to the loss and gets a zero gradient.
 *
 * Stock ops take about 20 dispatches (one-hot, log-softmax, the products,
 * sums and mean, and their gradients).
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, splitGroups, type WebGpuBackendInternals } from "./dispatch";

const THREADS = 256;

const COMMON = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<uniform> n: vec4<u32>; // rows, classes
fn labelOf(row: u32) -> i32 { let l = labels[row]; return select(-1, l, l >= 0 && u32(l) < n.y); }
fn rowMax(row: u32) -> f32 { var m = -3.4e38; for (var c = 0u; c < n.y; c = c + 1u) { m = max(m, logits[row * n.y + c]); } return m; }
fn rowSumExp(row: u32, m: f32) -> f32 { var s = 0.0; for (var c = 0u; c < n.y; c = c + 1u) { s = s + exp(logits[row * n.y + c] - m); } return s; }`;

const FORWARD = /* wgsl */ `
${COMMON}
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
var<workgroup> partial: array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lid: u32) {
  var sum = 0.0;
  for (var row = lid; row < n.x; row = row + ${THREADS}u) {
    let label = labelOf(row);
    if (label >= 0) {
      let m = rowMax(row);
      sum = sum + (log(rowSumExp(row, m)) + m - logits[row * n.y + u32(label)]);
    }
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var stride = ${THREADS / 2}u; stride > 0u; stride = stride >> 1u) {
    if (lid < stride) { partial[lid] = partial[lid] + partial[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) { loss[0] = partial[0] / f32(n.x); }
}`;

const BACKWARD = /* wgsl */ `
${COMMON}
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * groups.x) * ${THREADS}u + lid;
  if (row >= n.x) { return; }
  let label = labelOf(row);
  let scale = dy[0] / f32(n.x);
  for (var c = 0u; c < n.y; c = c + 1u) { dlogits[row * n.y + c] = 0.0; }
  if (label < 0) { return; }
  let m = rowMax(row);
  let total = rowSumExp(row, m);
  for (var c = 0u; c < n.y; c = c + 1u) {
    let p = exp(logits[row * n.y + c] - m) / total;
    dlogits[row * n.y + c] = (p - select(0.0, 1.0, i32(c) == label)) * scale;
  }
}`;

export const SOFTMAX_CROSS_ENTROPY = "DistlabSoftmaxCrossEntropy";
export const SOFTMAX_CROSS_ENTROPY_GRAD = "DistlabSoftmaxCrossEntropyGrad";

type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown };

/**
 * The two kernels for the webgpu registry:
 *   DistlabSoftmaxCrossEntropy      inputs logits [rows, classes], labels int32 [rows] -> loss []
 *   DistlabSoftmaxCrossEntropyGrad  inputs logits, labels, dy [] -> dlogits like logits
 */
export function softmaxCrossEntropyKernels(submitEvery: () => number): KernelConfig[] {
  const sizes = (b: WebGpuBackendInternals, logits: TensorInfo) => {
    const [rows, classes] = logits.shape as [number, number];
    return { rows, uniform: { buffer: constantUniform(b.device, new Uint32Array([rows, classes, 0, 0])) } };
  };
  const forward = ({ inputs, backend }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { logits, labels } = inputs as { logits: TensorInfo; labels: TensorInfo };
    const { uniform } = sizes(b, logits);
    const loss = newOutput(b, []) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, FORWARD), [logits, labels, uniform, loss], [1, 1], submitEvery(), SOFTMAX_CROSS_ENTROPY);
    return loss;
  };
  const backward = ({ inputs, backend }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { logits, labels, dy } = inputs as { logits: TensorInfo; labels: TensorInfo; dy: TensorInfo };
    const { rows, uniform } = sizes(b, logits);
    const dlogits = newOutput(b, logits.shape) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, BACKWARD), [logits, labels, uniform, dlogits, dy], splitGroups(Math.ceil(rows / THREADS)), submitEvery(), SOFTMAX_CROSS_ENTROPY_GRAD);
    return dlogits;
  };
  return [
    { kernelName: SOFTMAX_CROSS_ENTROPY, backendName: "webgpu", kernelFunc: forward as never },
    { kernelName: SOFTMAX_CROSS_ENTROPY_GRAD, backendName: "webgpu", kernelFunc: backward as never },
  ];
}
