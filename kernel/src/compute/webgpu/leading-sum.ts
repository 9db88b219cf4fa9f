/**
 * Sum over leading axes (a column sum) in one WebGPU dispatch.
 *
 * TF.js's webgpu reduce sums along the innermost axis only, so a sum over
 * axis 0 of [rows, n] (every bias gradient: dy summed over the batch) first
 * transposes x: two dispatches and a copy of dy. This kernel sums the
 * columns of x viewed as [rows, columns] in place: 16 columns per
 * workgroup, 16 lanes of rows each, added up in workgroup memory. Other
 * sums (innermost axes, mixed axes, non-float32) go to the stock kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, type WebGpuBackendInternals } from "./dispatch";

const COLUMNS = 16;
const LANES = 16;

const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> n: vec4<u32>; // rows, columns
var<workgroup> sums: array<f32, ${COLUMNS * LANES}>;
@compute @workgroup_size(${COLUMNS * LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let column = (wid.x + wid.y * groups.x) * ${COLUMNS}u + lid % ${COLUMNS}u;
  var sum = 0.0;
  if (column < n.y) { for (var row = lid / ${COLUMNS}u; row < n.x; row = row + ${LANES}u) { sum = sum + x[row * n.y + column]; } }
  sums[lid] = sum;
  workgroupBarrier();
  for (var stride = ${(COLUMNS * LANES) / 2}u; stride >= ${COLUMNS}u; stride = stride >> 1u) {
    if (lid < stride) { sums[lid] = sums[lid] + sums[lid + stride]; }
    workgroupBarrier();
  }
  if (lid < ${COLUMNS}u && column < n.y) { y[column] = sums[lid]; }
}`;

/** The number of leading axes `axis` names (0..k-1, in any order, negative allowed), or 0 if it names anything else or the last axis. */
export function leadingAxes(axis: number | number[] | null | undefined, rank: number): number {
  if (axis == null) return 0;
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  const k = axes.length;
  return k > 0 && k < rank && axes.every((a, i) => a === i) ? k : 0;
}

type KernelArgs = { inputs: { x: TensorInfo }; backend: unknown; attrs: { axis: number | number[]; keepDims: boolean } };

/** Sum for the webgpu registry: leading-axes float32 sums here, the rest through `stock`. */
export function leadingSumOverride(stock: KernelFunc, submitEvery: () => number): KernelConfig {
  const kernelFunc = (args: KernelArgs): TensorInfo => {
    const { inputs: { x }, backend, attrs } = args;
    const k = leadingAxes(attrs.axis, x.shape.length);
    const b = backend as WebGpuBackendInternals & { makeTensorInfo?: unknown };
    if (k === 0 || x.dtype !== "float32" || typeof b.makeTensorInfo !== "function") return stock(args as never) as TensorInfo;
    const rows = x.shape.slice(0, k).reduce((p, d) => p * d, 1);
    const columns = x.shape.slice(k).reduce((p, d) => p * d, 1);
    if (rows === 0 || columns === 0) return stock(args as never) as TensorInfo;
    const y = newOutput(b, attrs.keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k)) as TensorInfo;
    const groups = Math.ceil(columns / COLUMNS);
    const yGroups = Math.ceil(groups / 65535);
    recordDispatch(b, pipelineFor(b.device, SHADER), [x, y, { buffer: constantUniform(b.device, new Uint32Array([rows, columns, 0, 0])) }], [Math.ceil(groups / yGroups), yGroups], submitEvery(), "Sum");
    return y;
  };
  return { kernelName: "Sum", backendName: "webgpu", kernelFunc: kernelFunc as never };
}
