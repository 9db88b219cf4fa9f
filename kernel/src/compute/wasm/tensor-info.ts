/**
 * Small operations on the wasm backend's TensorInfos, used by the kernel
 * overrides in this folder. They work on the backend's heap directly (no
 * tf.Tensor objects, no engine bookkeeping), because they run inside a
 * kernel function where the engine is already tracking one op.
 *
 * TF.js internals it relies on (pinned version; ../tfjs-internals.ts checks
 * them): the BackendWasm members of WasmBackend and WasmBackendHeap below.
 */
import type { DataType, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { simdKernelsFor, type SimdKernels } from "./simd-kernels";

/** The parts of @tensorflow/tfjs-backend-wasm's BackendWasm that the overrides use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
  /** References to a buffer (tensors sharing it: Identity, Reshape, a variable and the tensor it was made from). */
  refCount(dataId: object): number;
  incRef(dataId: object): void;
}

interface WasmBackendHeap {
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { asm?: { memory?: object } };
}

/** The byte address of `info`'s values in the heap (the backend's dataIdMap). */
export function addressOf(backend: WasmBackend, info: TensorInfo): number {
  return (backend as unknown as WasmBackendHeap).dataIdMap.get(info.dataId)!.memoryOffset;
}

/** The SIMD loops of simd-kernels.ts bound to this backend's heap; undefined where they cannot be (no exported memory, no SIMD). */
export function simdOf(backend: WasmBackend): SimdKernels | undefined {
  const memory = (backend as unknown as WasmBackendHeap).wasm?.asm?.memory;
  return memory === undefined ? undefined : simdKernelsFor(memory);
}

/** True for a backend with the members above (TF.js 4.x's BackendWasm); the fused kernels and the fused Adam check it before use. */
export function hasWasmInternals(backend: object): backend is WasmBackend {
  const b = backend as Partial<WasmBackend> & { dataIdMap?: unknown; wasm?: unknown };
  return typeof b.makeOutput === "function" && typeof b.typedArrayFromHeap === "function" && typeof b.disposeData === "function"
    && typeof b.refCount === "function" && typeof b.incRef === "function" && b.dataIdMap !== undefined && b.wasm !== undefined;
}

/** The stock wasm kernels an override calls into, captured before it replaces any of them. */
export interface StockKernels {
  get(name: string): KernelFunc;
}

export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

/** A new view of `info`'s values; re-take it after any allocation, since the heap may have grown and moved. */
export function heapF32(backend: WasmBackend, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

export function reshape(stock: StockKernels, backend: WasmBackend, x: TensorInfo, shape: number[]): TensorInfo {
  return stock.get("Reshape")({ inputs: { x }, backend: backend as never, attrs: { shape } }) as TensorInfo;
}

export function dispose(backend: WasmBackend, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}
