/**
 * Elementwise passes of the wasm backend's fused ops in native code
 * (kernel/native/cpu-vector.cc, built by `npm run setup` with g++ where it can),
 * at the core's widest vectors: AVX-512's 16 float lanes where WebAssembly SIMD
 * has 4, and an exponential of its own where the wasm path borrows XNNPACK's
 * Sigmoid or Softmax for one. Used by the wasm kernels of GELU, causal
 * softmax and layer norm (each falls back to its WebAssembly loops without
 * the addon), the leading-axes Sum (bias gradients), same-shape float32 Add,
 * and a product's bias and relu (wasm/batch-mat-mul.ts).
 *
 * Environment (read once per thread, at the first use):
 *   DISTLAB_CPU_VECTOR   unset: the addon where it is built, else the WebAssembly loops
 *                        `off`: the WebAssembly loops always (for comparisons), and attention
 *                        as head-layout kernels around batched products, not the native pair
 *                        on the BLAS (wasm/causal-attention.ts, whose softmax is these loops')
 *
 * The arrays are views of the TF.js wasm heap, read and written in place.
 */
import * as path from "node:path";
import { addonOnce, addonSetting, loadAddon } from "../native-addons";

/** What kernel/native/cpu-vector.cc exports (Float32Arrays of one length, else it throws naming the array). */
export interface CpuVector {
  /** the loops this core runs: "avx512f" (AVX-512), "avx2" or "baseline" */
  isa(): string;
  /** GELU, tanh form: s = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3); y = x s. */
  gelu(x: Float32Array, y: Float32Array, s: Float32Array): void;
  /** dx = dy (s + 2 sqrt(2/pi) x s (1 - s) (1 + 3 0.044715 x^2)), s the forward's. */
  geluGrad(dy: Float32Array, x: Float32Array, s: Float32Array, dx: Float32Array): void;
  /** out = a + b. */
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** x [rows, bias.length] += bias in every row, in place; then max(x, 0) where relu. */
  addRows(x: Float32Array, bias: Float32Array, relu: boolean): void;
  /** out[c] = sum over rows of x[r, c], x viewed as [rows, out.length], rows in order. */
  columnSum(x: Float32Array, out: Float32Array): void;
  /** dz = dy where y > 0, else 0 (y: relu's output); dbias [C] = columnSum(dz), dz viewed as [rows, C]. */
  reluGradSum(dy: Float32Array, y: Float32Array, dz: Float32Array, dbias: Float32Array): void;
  /** scores, y [..., time, time]: y = softmax over keys j <= i of scale s (query i), 0 for j > i. */
  causalSoftmax(scores: Float32Array, y: Float32Array, time: number, scale: number): void;
  /** ds = scale y (dy - sum_j dy y), 0 for j > i. */
  causalSoftmaxGrad(y: Float32Array, dy: Float32Array, ds: Float32Array, time: number, scale: number): void;
  /** x, y [rows, C], gain, bias [C]: y = (x - mean) rstd gain + bias per row, rstd = 1 / sqrt(var + epsilon). */
  layerNorm(x: Float32Array, gain: Float32Array, bias: Float32Array, y: Float32Array, epsilon: number): void;
  /** dx [rows, C]; dgain, dbias [C] written (sums over rows of dy xhat and dy). */
  layerNormGrad(dy: Float32Array, x: Float32Array, gain: Float32Array, dx: Float32Array, dgain: Float32Array, dbias: Float32Array, epsilon: number): void;
}

/** Where `npm run setup` puts the addon, from src/compute or dist/compute alike. */
export const VECTOR_ADDON_PATH = path.join(__dirname, "..", "..", "native", "build", "cpu-vector.node");

/** False for DISTLAB_CPU_VECTOR=off; any other set value is refused, naming the variable. */
function wanted(env: NodeJS.ProcessEnv): boolean {
  return addonSetting(env, "DISTLAB_CPU_VECTOR", ["off"] as const) !== "off";
}

/** The thread's native passes, or undefined (DISTLAB_CPU_VECTOR=off, or the addon is not built or does not load). */
export const cpuVector: (env?: NodeJS.ProcessEnv) => CpuVector | undefined = addonOnce<CpuVector>(VECTOR_ADDON_PATH, wanted);

/** The same, not memoised (tests and `distlab doctor` ask with several environments). */
export function openCpuVector(env: NodeJS.ProcessEnv): CpuVector | undefined {
  return wanted(env) ? loadAddon<CpuVector>(VECTOR_ADDON_PATH) : undefined;
}
