/**
 * DistlabCausalAttention and DistlabCausalAttentionGrad for the wasm backend
 * (the names, and the op around them, are ../fused/causal-attention.ts's;
 * webgpu has the same pair in WGSL), on the machine's BLAS:
 * kernel/native/cpu-attention.cc multiplies each (sequence, head) where it
 * lies in qkv's rows, around a native causal softmax, with no head-layout
 * copies and one call from JavaScript a layer each way.
 *
 *   DistlabCausalAttention      inputs qkv [..., 3C]; attrs time, heads, scale
 *                               -> [out [..., C], probs [batch, heads, T, T]]
 *   DistlabCausalAttentionGrad  inputs qkv, probs, dy [..., C]; attrs as above -> dqkv like qkv
 *
 * The op takes this pair on wasm only where a BLAS is open (../cpu-blas.ts)
 * and the native passes are on (../cpu-vector.ts); otherwise it keeps the
 * head-layout kernels and batched products.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { cpuBlas } from "../cpu-blas";
import { CAUSAL_ATTENTION, CAUSAL_ATTENTION_GRAD } from "../webgpu/causal-attention";
import { heapF32, sizeOf, type WasmBackend } from "./tensor-info";

type Args = Parameters<KernelFunc>[0];
interface AttentionAttrs { time: number; heads: number; scale: number }

/** The BLAS, or an error naming the kernel: the op only calls these where cpuBlas() answered. */
function blas(kernel: string) {
  const found = cpuBlas();
  if (!found) throw new Error(`${kernel} on wasm needs the machine's BLAS (kernel/src/compute/cpu-blas.ts), and none is open`);
  return found;
}

export function causalAttentionKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo[] => {
    const backend = args.backend as unknown as WasmBackend;
    const { qkv } = args.inputs as { qkv: TensorInfo };
    const { time, heads, scale } = args.attrs as unknown as AttentionAttrs;
    const width = qkv.shape[qkv.shape.length - 1]! / 3;
    const batch = sizeOf(qkv.shape) / (3 * width * time);
    const out = backend.makeOutput([...qkv.shape.slice(0, -1), width], "float32");
    const probs = backend.makeOutput([batch, heads, time, time], "float32");
    if (batch > 0) blas(CAUSAL_ATTENTION).attention(heapF32(backend, qkv), heapF32(backend, out), heapF32(backend, probs), time, heads, scale);
    return [out, probs];
  };
  return { kernelName: CAUSAL_ATTENTION, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}

export function causalAttentionGradKernel(): KernelConfig {
  const kernelFunc = (args: Args): TensorInfo => {
    const backend = args.backend as unknown as WasmBackend;
    const { qkv, probs, dy } = args.inputs as { qkv: TensorInfo; probs: TensorInfo; dy: TensorInfo };
    const { time, heads, scale } = args.attrs as unknown as AttentionAttrs;
    const dqkv = backend.makeOutput([...qkv.shape], "float32");
    if (sizeOf(qkv.shape) > 0) {
      blas(CAUSAL_ATTENTION_GRAD).attentionGrad(heapF32(backend, qkv), heapF32(backend, probs), heapF32(backend, dy), heapF32(backend, dqkv), time, heads, scale);
    }
    return dqkv;
  };
  return { kernelName: CAUSAL_ATTENTION_GRAD, backendName: "wasm", kernelFunc: kernelFunc as KernelFunc };
}
