/**
 * Causal multi-head self-attention from the packed q|k|v projection:
 *
 *   qkv [..., 3C] (rows = batch * time)  ->  [..., C]
 *   per head: softmax(scale q k^T + causal mask) v, heads side by side
 *
 * On a backend with the fused kernels (webgpu, ../webgpu/causal-attention.ts;
 * time <= ROWS_MAX_TIME, head size <= 256) one dispatch forward and two
 * backward instead of about twenty; longer contexts on webgpu take the
 * stock form, whose products there are untransposed (./mat-mul.ts). On wasm
 * with the machine's BLAS (../cpu-blas.ts) and the native passes
 * (../cpu-vector.ts; DISTLAB_CPU_VECTOR=off turns both off) the same pair of
 * kernels, in native code on that BLAS (../wasm/causal-attention.ts): one
 * kernel each way, any context. Otherwise on wasm a tf.customGrad op whose products stay
 * batched matMuls (the BatchMatMul kernel's), around fused kernels for the
 * head layout (../wasm/attention-heads.ts) and the causal softmax
 * (../wasm/causal-softmax.ts): 5 kernels forward and 7 backward instead of
 * about 20 and 30. Elsewhere the same in stock ops (split, head transposes,
 * two batched matMuls, causalSoftmax), differentiated by TF.js.
 */
import { cpuBlas } from "../cpu-blas";
import { cpuVector } from "../cpu-vector";
import { FROM_HEADS, TO_HEADS } from "../wasm/attention-heads";
import { CAUSAL_ATTENTION, CAUSAL_ATTENTION_GRAD, MAX_HEAD_SIZE, MAX_TIME } from "../webgpu/causal-attention";
import { CAUSAL_SOFTMAX, CAUSAL_SOFTMAX_GRAD } from "../webgpu/causal-softmax";
import { causalSoftmax } from "./causal-softmax";
import { hasFusedKernel, runFused } from "./kernels";
import { matMul } from "./mat-mul";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

export interface AttentionShape {
  /** Positions per sequence (qkv's rows are batch * time). */
  time: number;
  heads: number;
}

/** The stock-op path; `mask` ([time, time], causalMask's) spares rebuilding it. */
export function stockCausalAttention(tf: Tf, qkv: Tensor, { time, heads }: AttentionShape, mask?: Tensor): Tensor {
  const width = qkv.shape[qkv.shape.length - 1]! / 3; // C
  const headSize = width / heads;
  const batch = qkv.size / (3 * width * time);
  const toHeads = (z: Tensor) => tf.transpose(tf.reshape(z, [batch, time, heads, headSize]), [0, 2, 1, 3]); // [batch, heads, time, hs]
  const [q, k, v] = tf.split(qkv, 3, -1).map(toHeads) as [Tensor, Tensor, Tensor];
  // ./mat-mul.ts's matMul: on webgpu products of untransposed operands forward and backward.
  const weights = causalSoftmax(tf, matMul(tf, q, k, true), 1 / Math.sqrt(headSize), mask); // [batch, heads, time, time]
  const attended = matMul(tf, weights, v); // [batch, heads, time, hs]
  return tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [...qkv.shape.slice(0, -1), width]);
}

const fusedOps = new WeakMap<object, Map<string, (qkv: Tensor) => Tensor>>();

function fusedCausalAttention(tf: Tf, attrs: { time: number; heads: number; scale: number }) {
  let byShape = fusedOps.get(tf);
  if (!byShape) fusedOps.set(tf, (byShape = new Map()));
  const key = `${attrs.time},${attrs.heads},${attrs.scale}`;
  let op = byShape.get(key);
  if (!op) {
    op = tf.customGrad((qkv, save) => {
      const [out, probs] = runFused<Tensor[]>(tf, CAUSAL_ATTENTION, { qkv: qkv as Tensor }, attrs);
      (save as (t: Tensor[]) => void)([qkv as Tensor, probs!]);
      return { value: out!, gradFunc: (dy: Tensor, saved: Tensor[]) => runFused<Tensor>(tf, CAUSAL_ATTENTION_GRAD, { qkv: saved[0]!, probs: saved[1]!, dy }, attrs) };
    }) as unknown as (qkv: Tensor) => Tensor;
    byShape.set(key, op);
  }
  return op;
}

const headOps = new WeakMap<object, Map<string, (qkv: Tensor) => Tensor>>();

/**
 * The wasm form: heads laid out by one kernel, products by tf.matMul.
 *   forward   q, k, v [batch * heads, T, hs] = toHeads(qkv);  P = causalSoftmax(q k^T, scale);  out = fromHeads(P v)
 *   backward  dO = toHeads(dout);  dS = causalSoftmaxGrad(P, dO v^T);  dqkv = fromHeads(dS k, dS^T q, P^T dO)
 */
function headsCausalAttention(tf: Tf, attrs: { time: number; heads: number; scale: number }) {
  let byShape = headOps.get(tf);
  if (!byShape) headOps.set(tf, (byShape = new Map()));
  const key = `${attrs.time},${attrs.heads},${attrs.scale}`;
  let op = byShape.get(key);
  if (!op) {
    const { time, heads, scale } = attrs;
    op = tf.customGrad((qkv, save) => {
      const input = qkv as Tensor;
      const [q, k, v] = runFused<Tensor[]>(tf, TO_HEADS, { x: input }, { time, heads, parts: 3 }) as [Tensor, Tensor, Tensor];
      const probs = runFused<Tensor>(tf, CAUSAL_SOFTMAX, { scores: tf.matMul(q, k, false, true) }, { scale }); // [batch * heads, T, T]
      const out = runFused<Tensor>(tf, FROM_HEADS, { x0: tf.matMul(probs, v) }, { time, heads }); // [rows, C]
      (save as (t: Tensor[]) => void)([q, k, v, probs]);
      return {
        value: tf.reshape(out, [...input.shape.slice(0, -1), out.shape[1]!]),
        gradFunc: (dy: Tensor, saved: Tensor[]) => {
          const [sq, sk, sv, p] = saved as [Tensor, Tensor, Tensor, Tensor];
          const [dOut] = runFused<Tensor[]>(tf, TO_HEADS, { x: dy }, { time, heads, parts: 1 }) as [Tensor];
          const dScores = runFused<Tensor>(tf, CAUSAL_SOFTMAX_GRAD, { y: p, dy: tf.matMul(dOut, sv, false, true) }, { scale });
          const dqkv = runFused<Tensor>(tf, FROM_HEADS, { x0: tf.matMul(dScores, sk), x1: tf.matMul(dScores, sq, true, false), x2: tf.matMul(p, dOut, true, false) }, { time, heads });
          return tf.reshape(dqkv, input.shape);
        },
      };
    }) as unknown as (qkv: Tensor) => Tensor;
    byShape.set(key, op);
  }
  return op;
}

/**
 * Longest context for which webgpu takes the per-query-row kernels by
 * default. They stream every key for every query (one dispatch forward, no
 * [T, T] products): at batch 8 with 12 heads of 64 on an H200, forward +
 * backward, they won at 64 and 128 positions and lost from 256 on, by 1.6x
 * at 1024, to batched matMuls around the fused causal softmax
 * (docs/benchmarks.md, GPT-2 small).
 */
export const ROWS_MAX_TIME = 128;

/**
 * Which webgpu form to take for `time` positions, from
 * DISTLAB_WEBGPU_ATTENTION: "rows" (the per-query-row kernels), "matmul"
 * (batched matMuls around the fused causal softmax, the form PyTorch eager
 * takes) or "auto" (the default: rows up to ROWS_MAX_TIME).
 */
export function webGpuAttentionForm(time: number, env: NodeJS.ProcessEnv = process.env): "rows" | "matmul" {
  const value = env.DISTLAB_WEBGPU_ATTENTION ?? "auto";
  if (value !== "rows" && value !== "matmul" && value !== "auto") throw new RangeError(`DISTLAB_WEBGPU_ATTENTION must be auto, rows or matmul, got ${value}`);
  if (value !== "auto") return value;
  return time <= ROWS_MAX_TIME ? "rows" : "matmul";
}

/** qkv [..., 3C] with batch * time rows -> [..., C]. */
export function causalAttention(tf: Tf, qkv: Tensor, shape: AttentionShape, mask?: Tensor): Tensor {
  const width = qkv.shape[qkv.shape.length - 1]!;
  if (width % (3 * shape.heads) !== 0) throw new RangeError(`causalAttention: qkv's last axis (${width}) must be 3 * heads * headSize (heads ${shape.heads})`);
  if ((qkv.size / width) % shape.time !== 0) throw new RangeError(`causalAttention: qkv's rows (${qkv.size / width}) must be batch * time (time ${shape.time})`);
  const headSize = width / 3 / shape.heads;
  const fused = hasFusedKernel(tf, CAUSAL_ATTENTION, [qkv]);
  if (fused && tf.getBackend() === "wasm" && cpuBlas() && cpuVector()) return fusedCausalAttention(tf, { ...shape, scale: 1 / Math.sqrt(headSize) })(qkv);
  if (fused && tf.getBackend() !== "wasm" && shape.time <= MAX_TIME && headSize <= MAX_HEAD_SIZE && webGpuAttentionForm(shape.time) === "rows") {
    return fusedCausalAttention(tf, { ...shape, scale: 1 / Math.sqrt(headSize) })(qkv);
  }
  if (hasFusedKernel(tf, TO_HEADS, [qkv]) && hasFusedKernel(tf, CAUSAL_SOFTMAX, [qkv])) {
    return headsCausalAttention(tf, { ...shape, scale: 1 / Math.sqrt(headSize) })(qkv);
  }
  return stockCausalAttention(tf, qkv, shape, mask);
}
