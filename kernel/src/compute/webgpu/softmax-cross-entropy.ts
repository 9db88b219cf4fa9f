/**
 * Mean softmax cross-entropy of logits [rows, classes] against int32 class
 * ids [rows] as WebGPU kernels: DistlabSoftmaxCrossEntropy (the scalar
 * loss, two dispatches) and DistlabSoftmaxCrossEntropyGrad (dlogits, one).
 * The op around them, and the same math in stock ops, is
 * ../fused/cross-entropy.ts.
 *
 *   loss = mean over rows of (logsumexp(logits_r) - logits_r[label_r])
 *   dlogits_r = dy / rows (softmax(logits_r) - onehot(label_r))
 * A label outside 0..classes-1 is an all-zero one-hot row, as tf.oneHot
 * makes it: the row adds 0 to the loss and gets a zero gradient.
 *
 * One workgroup per row: its threads stride over the classes (neighbouring
 * threads read neighbouring logits) keeping a running (max, sum of exp),
 * merged across the workgroup, so a GPT-2-sized vocabulary (50,304
 * classes, 8,192 rows) streams the logits once per pass at memory speed.
 * The forward writes each row's loss and a second dispatch (one
 * workgroup) takes their mean. Stock ops take about 20 dispatches
 * (one-hot, log-softmax, the products, sums and mean, and their gradients).
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, splitGroups, type WebGpuBackendInternals } from "./dispatch";
import { flatGridMain } from "./wgsl-preamble";
import { workgroupReduceWgsl } from "./wgsl-workgroup-reduce";

const THREADS = 256;

/** Bindings 0-2 and `rowStats(row, lid)`: (max, sum of exp(logit - max)) of the row, the same in every invocation. */
const COMMON = /* wgsl */ `
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<uniform> n: vec4<u32>; // rows, classes
var<workgroup> maxima: array<f32, ${THREADS}>;
var<workgroup> sums: array<f32, ${THREADS}>;
fn labelOf(row: u32) -> i32 { let l = labels[row]; return select(-1, l, l >= 0 && u32(l) < n.y); }
// Online softmax statistics: a larger value rescales the sum so far instead of needing a first pass for the max.
fn rowStats(row: u32, lid: u32) -> vec2<f32> {
  var m = -3.4e38;
  var s = 0.0;
  for (var c = lid; c < n.y; c = c + ${THREADS}u) {
    let x = logits[row * n.y + c];
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s = s + exp(x - m); }
  }
  maxima[lid] = m;
  sums[lid] = s;
  workgroupBarrier();
  for (var stride = ${THREADS / 2}u; stride > 0u; stride = stride >> 1u) {
    if (lid < stride) {
      let m1 = maxima[lid]; let m2 = maxima[lid + stride];
      let top = max(m1, m2);
      sums[lid] = sums[lid] * exp(m1 - top) + sums[lid + stride] * exp(m2 - top);
      maxima[lid] = top;
    }
    workgroupBarrier();
  }
  let stats = vec2<f32>(maxima[0], sums[0]);
  workgroupBarrier();
  return stats;
}`;

const FORWARD_ROWS = /* wgsl */ `
${COMMON}
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
${flatGridMain(THREADS, /* wgsl */ `
  let row = group;
  if (row >= n.x) { return; }
  let stats = rowStats(row, lid);
  let label = labelOf(row);
  if (lid == 0u) { rowLoss[row] = select(0.0, log(stats.y) + stats.x - logits[row * n.y + u32(max(label, 0))], label >= 0); }`)}`;

const FORWARD_MEAN = /* wgsl */ `
@group(0) @binding(0) var<storage, read> rowLoss: array<f32>;
@group(0) @binding(1) var<uniform> n: vec4<u32>; // rows, classes
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
${workgroupReduceWgsl(THREADS)}
${flatGridMain(THREADS, /* wgsl */ `
  var sum = 0.0;
  for (var row = lid; row < n.x; row = row + ${THREADS}u) { sum = sum + rowLoss[row]; }
  let total = workgroupReduce(lid, sum, false);
  if (lid == 0u) { loss[0] = total / f32(n.x); }`)}`;

const BACKWARD = /* wgsl */ `
${COMMON}
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
${flatGridMain(THREADS, /* wgsl */ `
  let row = group;
  if (row >= n.x) { return; }
  let stats = rowStats(row, lid);
  let label = labelOf(row);
  // An out-of-range label's row gets zeros.
  let scale = select(0.0, dy[0] / f32(n.x), label >= 0);
  for (var c = lid; c < n.y; c = c + ${THREADS}u) {
    let p = exp(logits[row * n.y + c] - stats.x) / stats.y;
    dlogits[row * n.y + c] = (p - select(0.0, 1.0, i32(c) == label)) * scale;
  }`)}`;

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
    const { rows, uniform } = sizes(b, logits);
    const rowLoss = newOutput(b, [rows]) as TensorInfo;
    const loss = newOutput(b, []) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, FORWARD_ROWS), [logits, labels, uniform, rowLoss], splitGroups(rows), submitEvery(), SOFTMAX_CROSS_ENTROPY);
    recordDispatch(b, pipelineFor(b.device, FORWARD_MEAN), [rowLoss, uniform, loss], [1, 1], submitEvery(), SOFTMAX_CROSS_ENTROPY);
    (b as unknown as { disposeData(dataId: object): void }).disposeData(rowLoss.dataId);
    return loss;
  };
  const backward = ({ inputs, backend }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { logits, labels, dy } = inputs as { logits: TensorInfo; labels: TensorInfo; dy: TensorInfo };
    const { rows, uniform } = sizes(b, logits);
    const dlogits = newOutput(b, logits.shape) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, BACKWARD), [logits, labels, uniform, dlogits, dy], splitGroups(rows), submitEvery(), SOFTMAX_CROSS_ENTROPY_GRAD);
    return dlogits;
  };
  return [
    { kernelName: SOFTMAX_CROSS_ENTROPY, backendName: "webgpu", kernelFunc: forward as never },
    { kernelName: SOFTMAX_CROSS_ENTROPY_GRAD, backendName: "webgpu", kernelFunc: backward as never },
  ];
}
