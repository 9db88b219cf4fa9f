/**
 * GELU, tanh form, for the wasm backend: DistlabGelu and DistlabGeluGrad
 * (the names, and the op around them, are ../fused/gelu.ts's).
 *
 *   u = sqrt(2/pi) (x + 0.044715 x^3),  0.5 (1 + tanh(u)) = sigmoid(2u) = s
 *   y  = x s
 *   dx = dy (s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 0.044715 x^2))
 *
 * The stock ops take 11 kernels per GELU and step (pow, mul, add, tanh and
 * their gradients) for each of the tiny GPT's four [768, 512] GELUs, where
 * this takes three passes (figures: docs/compute.md, "Figures behind the
 * code"). The forward is a pass writing 2u (simd-kernels.ts's geluInput),
 * the stock Sigmoid (XNNPACK's vectorised kernel, far faster than a
 * JavaScript Math.tanh or Math.exp per element) and a pass
 * writing x s over 2u (multiply). It returns s as a second output, which
 * the op saves for the gradient: one pass (geluGrad), no transcendental
 * function. Element counts not a multiple of 4 finish in JavaScript.
 *
 * Where the native passes are built (../cpu-vector.ts), each kernel is one
 * native pass instead: the forward computes s with its own exponential and
 * writes y and s together, at AVX-512's 16 lanes (docs/compute.md,
 * "Elementwise passes in native code").
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuVector } from "../cpu-vector";
import { GELU, GELU_GRAD } from "../webgpu/gelu";
import { addressOf, heapF32, simdOf, sizeOf, type StockKernels, type WasmBackend } from "./tensor-info";

type Args = Parameters<KernelFunc>[0];

const K = Math.sqrt(2 / Math.PI);
const C = 0.044715;

/** DistlabGelu: inputs x -> [y like x, s = sigmoid(2u) like x]. */
export function geluKernel(stock: StockKernels): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo[] => {
    const backend = args.backend as unknown as WasmBackend;
    const { x } = args.inputs as { x: TensorInfo };
    const out = backend.makeOutput([...x.shape], "float32");
    const native = cpuVector();
    if (native) {
      const s = backend.makeOutput([...x.shape], "float32");
      native.gelu(heapF32(backend, x), heapF32(backend, out), heapF32(backend, s));
      return [out, s];
    }
    const simd = simdOf(backend);
    // The SIMD loops take the multiple-of-4 prefix, JavaScript the rest.
    const count = sizeOf(x.shape), head = simd ? count & ~3 : 0;
    if (simd) simd.geluInput(addressOf(backend, x), addressOf(backend, out), 4 * head);
    {
      const twoU = heapF32(backend, out), xs = heapF32(backend, x);
      for (let i = head; i < count; i++) { const v = xs[i]!; twoU[i] = (v + C * (v * v * v)) * (2 * K); }
    }
    const s = stock.get("Sigmoid")({ inputs: { x: out }, backend: args.backend, attrs: {} }) as TensorInfo;
    if (simd) simd.multiply(addressOf(backend, x), addressOf(backend, s), addressOf(backend, out), 4 * head);
    // Views after the Sigmoid kernel's allocation: the heap may have moved.
    const y = heapF32(backend, out), xs = heapF32(backend, x), ss = heapF32(backend, s);
    for (let i = head; i < count; i++) y[i] = xs[i]! * ss[i]!;
    return [out, s];
  };
  return { kernelName: GELU, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

/** DistlabGeluGrad: inputs dy, x, s (the forward's second output) -> dx like x. */
export function geluGradKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { dy, x, s } = args.inputs as { dy: TensorInfo; x: TensorInfo; s: TensorInfo };
    const out = backend.makeOutput([...x.shape], "float32");
    const native = cpuVector();
    if (native) {
      native.geluGrad(heapF32(backend, dy), heapF32(backend, x), heapF32(backend, s), heapF32(backend, out));
      return out;
    }
    const simd = simdOf(backend);
    const count = sizeOf(x.shape), head = simd ? count & ~3 : 0;
    if (simd) simd.geluGrad(addressOf(backend, dy), addressOf(backend, x), addressOf(backend, s), addressOf(backend, out), 4 * head);
    const dx = heapF32(backend, out), xs = heapF32(backend, x), ss = heapF32(backend, s), dys = heapF32(backend, dy);
    for (let i = head; i < count; i++) {
      const v = xs[i]!, si = ss[i]!;
      dx[i] = dys[i]! * (si + 2 * K * v * si * (1 - si) * (1 + 3 * C * (v * v)));
    }
    return out;
  };
  return { kernelName: GELU_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
