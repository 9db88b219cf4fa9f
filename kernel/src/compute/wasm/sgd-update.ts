/**
 * Plain SGD's update for the wasm backend, in place on the variables' heap
 * buffers: one pass per variable, x <- g (-lr) + x.
 *
 * tf.train.sgd runs a multiply and an add per variable, each into a new
 * buffer, then assigns: for the MLP of bench:compute (6 variables, 0.67M
 * values) 12 kernels, 4 passes over each variable and 12 allocations where
 * this makes 6 passes. The pass is simd-kernels.ts's sgd (4 lanes) over the
 * multiple-of-4 prefix and the same float32 operations in JavaScript over
 * the rest, in the stock order (multiply, then add): results are bit for
 * bit tf.train.sgd's (test/unit/compute-sgd.test.ts).
 */
import type { TensorInfo } from "@tensorflow/tfjs";
import { addressOf, heapF32, simdOf, sizeOf, type WasmBackend } from "./tensor-info";

export interface WasmSgdSlot { x: TensorInfo; g: TensorInfo }

const f = Math.fround;

/** Updates every slot: x and g float32 of one size; x must own its buffer (refCount 1), it is written in place. */
export function applySgdUpdates(backend: WasmBackend, slots: WasmSgdSlot[], learningRate: number): void {
  const negLr = f(-learningRate); // as tf.train.sgd's float32 scalar holds it
  const simd = simdOf(backend);
  for (const { x, g } of slots) {
    const count = sizeOf(x.shape), head = simd ? count & ~3 : 0;
    if (simd && head > 0) simd.sgd(addressOf(backend, x), addressOf(backend, g), 4 * head, negLr);
    if (head === count) continue;
    const xs = heapF32(backend, x), gs = heapF32(backend, g);
    for (let i = head; i < count; i++) xs[i] = f(f(gs[i]! * negLr) + xs[i]!);
  }
}
