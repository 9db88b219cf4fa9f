/**
 * GELU (tanh form, as GPT-2 and PyTorch's approximate="tanh") and its
 * gradient as one WebGPU dispatch each: DistlabGelu and DistlabGeluGrad.
 * The op around them, and the same math in stock ops, is ../fused/gelu.ts.
 *
 *   u = sqrt(2/pi) (x + 0.044715 x^3),  t = tanh(u)
 *   y  = 0.5 x (1 + t)
 *   dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2))
 *
 * Stock ops take 11 dispatches per GELU and step (pow, mul, add, tanh and
 * their gradients): about 90 of the tiny GPT's.
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, splitGroups, type WebGpuBackendInternals } from "./dispatch";

const WORKGROUP = 256;

/** tanh as TF.js's webgpu backend writes it: exp(-2|u|) never overflows (WGSL's tanh may give NaN for large |u| on some drivers). */
const COMMON = /* wgsl */ `
@group(0) @binding(2) var<uniform> n: vec4<u32>;
const K = 0.7978845608028654;
fn tanhStable(u: f32) -> f32 { let e = exp(-2.0 * abs(u)); return sign(u) * (1.0 - e) / (1.0 + e); }
// tanh(K (v + 0.044715 v^3)), shared by the value and its derivative
fn innerTanh(v: f32) -> f32 { return tanhStable((v + 0.044715 * (v * v * v)) * K); }
fn index(id: vec3<u32>, groups: vec3<u32>) -> u32 { return id.x + id.y * groups.x * ${WORKGROUP}u; }`;

const FORWARD = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${COMMON}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = index(id, groups);
  if (i >= n.x) { return; }
  let v = x[i];
  let t = innerTanh(v);
  y[i] = (0.5 * v) * (1.0 + t);
}`;

const BACKWARD = /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
${COMMON}
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = index(id, groups);
  if (i >= n.x) { return; }
  let v = x[i];
  let t = innerTanh(v);
  dx[i] = dy[i] * (0.5 * (1.0 + t) + (0.5 * v) * (1.0 - t * t) * K * (1.0 + 3.0 * 0.044715 * (v * v)));
}`;

export const GELU = "DistlabGelu";
export const GELU_GRAD = "DistlabGeluGrad";

type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown };

/**
 * The two kernels for the webgpu registry:
 *   DistlabGelu      inputs x -> y like x
 *   DistlabGeluGrad  inputs dy, x -> dx like x
 */
export function geluKernels(submitEvery: () => number): KernelConfig[] {
  const elementwise = (code: string, name: string) => ({ inputs, backend }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { x, dy } = inputs as { x: TensorInfo; dy?: TensorInfo };
    const count = x.shape.reduce((p, d) => p * d, 1);
    const out = newOutput(b, x.shape) as TensorInfo;
    if (count === 0) return out;
    const size = constantUniform(b.device, new Uint32Array([count, 0, 0, 0]));
    recordDispatch(b, pipelineFor(b.device, code), [x, out, { buffer: size }, ...(dy ? [dy] : [])], splitGroups(Math.ceil(count / WORKGROUP)), submitEvery(), name);
    return out;
  };
  return [
    { kernelName: GELU, backendName: "webgpu", kernelFunc: elementwise(FORWARD, GELU) as never },
    { kernelName: GELU_GRAD, backendName: "webgpu", kernelFunc: elementwise(BACKWARD, GELU_GRAD) as never },
  ];
}
