/**
 * What the fused ops share: whether the current backend has a fused kernel
 * (registered for webgpu by ../webgpu/overrides.ts, for wasm by
 * ../wasm/overrides.ts), and running one.
 */
import { hasWasmInternals } from "../wasm/tensor-info";
import { hasDispatchInternals } from "../webgpu/dispatch";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

/** True where `kernelName` is registered for the active backend, the backend has the internals the kernels use (webgpu's or wasm's), and every input is float32. */
export function hasFusedKernel(tf: Pick<Tf, "getKernel" | "getBackend" | "backend">, kernelName: string, inputs: Tensor[]): boolean {
  if (tf.getKernel(kernelName, tf.getBackend()) === undefined || !inputs.every((t) => t.dtype === "float32")) return false;
  const backend = tf.backend();
  return hasDispatchInternals(backend) || hasWasmInternals(backend);
}

/** tf.engine().runKernel, typed for the fused kernels (one output or several). */
export function runFused<T extends Tensor | Tensor[]>(tf: Pick<Tf, "engine">, kernelName: string, inputs: Record<string, Tensor>, attrs: Record<string, number> = {}): T {
  return tf.engine().runKernel(kernelName, inputs as never, attrs as never) as unknown as T;
}
