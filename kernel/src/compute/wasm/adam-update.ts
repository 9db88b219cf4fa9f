/**
 * Adam's update for the wasm backend, in place on the variables' heap
 * buffers: one pass per variable reads the gradient and writes the first
 * moment m, the second moment v and the variable.
 *
 *   m <- beta1 m + (1 - beta1) g
 *   v <- beta2 v + (1 - beta2) g^2
 *   x <- x - lr (m / c1) / (sqrt(v / c2) + eps)      c1 = 1 - beta1^t, c2 = 1 - beta2^t
 *
 * tf.train.adam computes the same with 14 kernels per variable (each a new
 * buffer): about 730 kernel calls per tiny-GPT step (52 variables, 0.8M
 * values) where this makes 52 passes (times: docs/compute.md, "Figures
 * behind the code"). The
 * pass is simd-kernels.ts's adam (4 lanes) over the multiple-of-4 prefix
 * and the same float32 operations in JavaScript (Math.fround after each)
 * over the rest, in tf.train.adam's order: results are bit for bit the
 * stock update's (test/unit/compute-adam.test.ts).
 */
import type { TensorInfo } from "@tensorflow/tfjs";
import { addressOf, heapF32, simdOf, sizeOf, type WasmBackend } from "./tensor-info";

export interface WasmAdamSlot { x: TensorInfo; m: TensorInfo; v: TensorInfo; g: TensorInfo }
export interface WasmAdamHyper { lr: number; beta1: number; beta2: number; eps: number; c1: number; c2: number }

const f = Math.fround;

/**
 * Updates every slot. All tensors float32 and of one size per slot; x, m
 * and v must each own their buffer (refCount 1): they are written in place.
 */
export function applyAdamUpdates(backend: WasmBackend, slots: WasmAdamSlot[], hyper: WasmAdamHyper): void {
  // The scalars as the stock update's float32 scalar tensors hold them.
  const beta1 = f(hyper.beta1), oneMinusBeta1 = f(1 - hyper.beta1), beta2 = f(hyper.beta2), oneMinusBeta2 = f(1 - hyper.beta2);
  const c1 = f(hyper.c1), c2 = f(hyper.c2), eps = f(hyper.eps), negLr = f(-hyper.lr);
  const simd = simdOf(backend);
  for (const { x, m, v, g } of slots) {
    const count = sizeOf(x.shape), head = simd ? count & ~3 : 0;
    if (simd && head > 0) {
      simd.adam(addressOf(backend, x), addressOf(backend, m), addressOf(backend, v), addressOf(backend, g), 4 * head, beta1, oneMinusBeta1, beta2, oneMinusBeta2, c1, c2, eps, negLr);
    }
    if (head === count) continue;
    const xs = heapF32(backend, x), ms = heapF32(backend, m), vs = heapF32(backend, v), gs = heapF32(backend, g);
    for (let i = head; i < count; i++) {
      const gi = gs[i]!;
      const mi = f(f(ms[i]! * beta1) + f(gi * oneMinusBeta1));
      const vi = f(f(vs[i]! * beta2) + f(f(gi * gi) * oneMinusBeta2));
      ms[i] = mi;
      vs[i] = vi;
      xs[i] = f(f(f(f(mi / c1) / f(f(Math.sqrt(f(vi / c2))) + eps)) * negLr) + xs[i]!);
    }
  }
}
