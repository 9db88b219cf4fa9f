/**
 * Causal self-attention on the packed q|k|v projection, as WebGPU kernels:
 * DistlabCausalAttention (one dispatch) and DistlabCausalAttentionGrad
 * (two). The op around them, and the same math in stock ops, is
 * ../fused/causal-attention.ts.
 *
 *   qkv [rows = batch * T, 3C]: q, k, v blocks of C columns, head h at columns h*hs .. (h+1)*hs of each
 *   P = softmax_j(scale q_i . k_j + (j > i ? -1e9 : 0))      [batch, heads, T, T]
 *   out[i] = sum_j P[i, j] v_j                                 [rows, C], heads side by side
 *   backward: dP = dout_i . v_j,  dS = scale P (dP - sum_j P dP)
 *             dq_i = sum_j dS k_j       (one workgroup per query row; also writes dS)
 *             dk_j = sum_i dS q_i,  dv_j = sum_i P dout_i     (one workgroup per key row)
 *
 * Masked keys (j > i) get weight exactly 0 in both (exp(-1e9 - max) is 0 in
 * float32), so the kernels skip them. Stock ops take 10 dispatches forward
 * (split, 3 head transposes, 2 matMuls, the masked softmax, the merge
 * transpose) and 10 backward per layer and step.
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, newOutput, pipelineFor, recordDispatch, splitGroups, type WebGpuBackendInternals } from "./dispatch";
import { flatGridMain, wgslBindings } from "./wgsl-preamble";
import { workgroupReduceWgsl } from "./wgsl-workgroup-reduce";

const THREADS = 64;
/** Longest context and widest head the kernels take (workgroup memory); the op uses stock ops past these. */
export const MAX_TIME = 1024;
export const MAX_HEAD_SIZE = 256;

const COMMON = /* wgsl */ `
struct Sizes { groups: u32, time: u32, heads: u32, headSize: u32, scale: f32, u0: u32, u1: u32, u2: u32 }
${wgslBindings([["s", "uniform", "Sizes"]])}
${workgroupReduceWgsl(THREADS)}
// Index of (row, part, head, d) in qkv [rows, 3C] and of (row, head, d) in [rows, C].
fn packed(row: u32, part: u32, head: u32, d: u32) -> u32 { let c = s.heads * s.headSize; return row * 3u * c + part * c + head * s.headSize + d; }
fn merged(row: u32, head: u32, d: u32) -> u32 { return row * s.heads * s.headSize + head * s.headSize + d; }
// Workgroup index -> (batch, head, position, 1 if a real workgroup): position fastest.
fn place(index: u32) -> vec4<u32> {
  let position = index % s.time;
  let bh = index / s.time;
  return vec4<u32>(bh / s.heads, bh % s.heads, position, select(0u, 1u, index < s.groups));
}`;

/** WGSL statements: this workgroup's query row (b, h, i) and `row`, its index in qkv; `valid` false past the last. */
const QUERY_ROW = /* wgsl */ `
  let at = place(group);
  let valid = at.w == 1u;
  let b = at.x; let h = at.y; let i = at.z;
  let row = b * s.time + i;`;

/**
 * WGSL statements ending a query row's kernel: once every thread has written `weights` [T] (workgroup
 * memory), each head dimension d gets sum over keys j <= i of weights[j] * qkv's `part` block at key row j,
 * stored by `store` (WGSL with `acc`).
 */
const weightedKeySum = (weights: string, part: string, store: string) => /* wgsl */ `
  workgroupBarrier();
  if (!valid) { return; }
  for (var d = lid; d < s.headSize; d = d + ${THREADS}u) {
    var acc = 0.0;
    for (var j = 0u; j <= i; j = j + 1u) { acc = acc + ${weights}[j] * qkv[packed(b * s.time + j, ${part}, h, d)]; }
    ${store}
  }`;

const FORWARD = /* wgsl */ `
${COMMON}
${wgslBindings([["qkv", "read"], ["result", "read_write"], ["probs", "read_write"]], 1)}
var<workgroup> q: array<f32, ${MAX_HEAD_SIZE}>;
var<workgroup> p: array<f32, ${MAX_TIME}>;
${flatGridMain(THREADS, /* wgsl */ `${QUERY_ROW}
  if (valid) { for (var d = lid; d < s.headSize; d = d + ${THREADS}u) { q[d] = qkv[packed(row, 0u, h, d)]; } }
  workgroupBarrier();
  var biggest = -3.4e38;
  if (valid) {
    for (var j = lid; j <= i; j = j + ${THREADS}u) {
      var dot = 0.0;
      for (var d = 0u; d < s.headSize; d = d + 1u) { dot = dot + q[d] * qkv[packed(b * s.time + j, 1u, h, d)]; }
      let score = dot * s.scale;
      p[j] = score;
      biggest = max(biggest, score);
    }
  }
  let rowMax = workgroupReduce(lid, biggest, true);
  var sum = 0.0;
  if (valid) { for (var j = lid; j <= i; j = j + ${THREADS}u) { let e = exp(p[j] - rowMax); p[j] = e; sum = sum + e; } }
  let total = workgroupReduce(lid, sum, false);
  if (valid) {
    let base = ((b * s.heads + h) * s.time + i) * s.time;
    for (var j = lid; j < s.time; j = j + ${THREADS}u) {
      var weight = 0.0;
      if (j <= i) { weight = p[j] / total; p[j] = weight; }
      probs[base + j] = weight;
    }
  }${weightedKeySum("p", "2u", "result[merged(row, h, d)] = acc;")}`)}`;

const BACKWARD_QUERIES = /* wgsl */ `
${COMMON}
${wgslBindings([["qkv", "read"], ["probs", "read"], ["dout", "read"], ["dqkv", "read_write"], ["dscores", "read_write"]], 1)}
var<workgroup> g: array<f32, ${MAX_HEAD_SIZE}>;
var<workgroup> ds: array<f32, ${MAX_TIME}>;
${flatGridMain(THREADS, /* wgsl */ `${QUERY_ROW}
  let base = ((b * s.heads + h) * s.time + i) * s.time;
  if (valid) { for (var d = lid; d < s.headSize; d = d + ${THREADS}u) { g[d] = dout[merged(row, h, d)]; } }
  workgroupBarrier();
  var weighted = 0.0;
  if (valid) {
    for (var j = lid; j <= i; j = j + ${THREADS}u) {
      var dp = 0.0;
      for (var d = 0u; d < s.headSize; d = d + 1u) { dp = dp + g[d] * qkv[packed(b * s.time + j, 2u, h, d)]; }
      ds[j] = dp;
      weighted = weighted + probs[base + j] * dp;
    }
  }
  let total = workgroupReduce(lid, weighted, false);
  if (valid) {
    for (var j = lid; j < s.time; j = j + ${THREADS}u) {
      var value = 0.0;
      if (j <= i) { value = (probs[base + j] * (ds[j] - total)) * s.scale; ds[j] = value; }
      dscores[base + j] = value;
    }
  }${weightedKeySum("ds", "1u", "dqkv[packed(row, 0u, h, d)] = acc;")}`)}`;

const BACKWARD_KEYS = /* wgsl */ `
${COMMON}
${wgslBindings([["qkv", "read"], ["probs", "read"], ["dout", "read"], ["dqkv", "read_write"], ["dscores", "read"]], 1)}
${flatGridMain(THREADS, /* wgsl */ `
  let at = place(group);
  if (at.w == 0u) { return; }
  let b = at.x; let h = at.y; let j = at.z;
  let row = b * s.time + j;
  let column = (b * s.heads + h) * s.time * s.time + j; // + i * time: entry (i, j)
  for (var d = lid; d < s.headSize; d = d + ${THREADS}u) {
    var dk = 0.0;
    var dv = 0.0;
    for (var i = j; i < s.time; i = i + 1u) {
      let other = b * s.time + i;
      dk = dk + dscores[column + i * s.time] * qkv[packed(other, 0u, h, d)];
      dv = dv + probs[column + i * s.time] * dout[merged(other, h, d)];
    }
    dqkv[packed(row, 1u, h, d)] = dk;
    dqkv[packed(row, 2u, h, d)] = dv;
  }`)}`;

export const CAUSAL_ATTENTION = "DistlabCausalAttention";
export const CAUSAL_ATTENTION_GRAD = "DistlabCausalAttentionGrad";

type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

function sizes(b: WebGpuBackendInternals, qkv: TensorInfo, attrs: Record<string, unknown>) {
  const time = attrs.time as number, heads = attrs.heads as number;
  const rows = qkv.shape.reduce((p, d) => p * d, 1) / qkv.shape[qkv.shape.length - 1]!;
  const channels = qkv.shape[qkv.shape.length - 1]! / 3;
  const headSize = channels / heads;
  const batch = rows / time;
  const words = new ArrayBuffer(32);
  new Uint32Array(words, 0, 4).set([batch * heads * time, time, heads, headSize]);
  new Float32Array(words, 16, 1)[0] = attrs.scale as number;
  return { batch, time, heads, channels, groups: batch * heads * time, uniform: { buffer: constantUniform(b.device, words) } };
}

/**
 * The two kernels for the webgpu registry:
 *   DistlabCausalAttention      inputs qkv [..., 3C]; attrs heads, time, scale -> [out [..., C], probs [batch, heads, T, T]]
 *   DistlabCausalAttentionGrad  inputs qkv, probs, dy [..., C]; attrs as above -> dqkv like qkv
 */
export function causalAttentionKernels(submitEvery: () => number): KernelConfig[] {
  const forward = ({ inputs, backend, attrs }: KernelArgs): TensorInfo[] => {
    const b = backend as WebGpuBackendInternals;
    const { qkv } = inputs as { qkv: TensorInfo };
    const z = sizes(b, qkv, attrs!);
    const out = newOutput(b, [...qkv.shape.slice(0, -1), z.channels]) as TensorInfo;
    const probs = newOutput(b, [z.batch, z.heads, z.time, z.time]) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, FORWARD), [z.uniform, qkv, out, probs], splitGroups(z.groups), submitEvery(), CAUSAL_ATTENTION);
    return [out, probs];
  };
  const backward = ({ inputs, backend, attrs }: KernelArgs): TensorInfo => {
    const b = backend as WebGpuBackendInternals;
    const { qkv, probs, dy } = inputs as { qkv: TensorInfo; probs: TensorInfo; dy: TensorInfo };
    const z = sizes(b, qkv, attrs!);
    const dqkv = newOutput(b, qkv.shape) as TensorInfo;
    const dscores = newOutput(b, probs.shape) as TensorInfo;
    recordDispatch(b, pipelineFor(b.device, BACKWARD_QUERIES), [z.uniform, qkv, probs, dy, dqkv, dscores], splitGroups(z.groups), submitEvery(), CAUSAL_ATTENTION_GRAD);
    recordDispatch(b, pipelineFor(b.device, BACKWARD_KEYS), [z.uniform, qkv, probs, dy, dqkv, dscores], splitGroups(z.groups), submitEvery(), CAUSAL_ATTENTION_GRAD);
    (b as unknown as { disposeData(dataId: object): void }).disposeData(dscores.dataId);
    return dqkv;
  };
  return [
    { kernelName: CAUSAL_ATTENTION, backendName: "webgpu", kernelFunc: forward as never },
    { kernelName: CAUSAL_ATTENTION_GRAD, backendName: "webgpu", kernelFunc: backward as never },
  ];
}
