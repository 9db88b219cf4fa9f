/**
 * `dist.allReduce(tensor)` on the wasm backend in a shm (threads) world,
 * without the copies the generic tensor path makes: the generic path reads
 * the tensor out (`tensor.data()`: a fresh array of the tensor's bytes, whose
 * pages all fault on first write), reduces it into a pooled result, and makes
 * the result tensor from it (a copy into the wasm heap by TypedArray#set,
 * slow from shared memory). Here:
 *
 *   wasm heap --memmove--> registered block --allReduce in place--> registered block --memmove--> new tensor's heap
 *
 * The collective is the registered in-place call (peers read the block where
 * it lies, the reduced slices are written straight into it), the block is the
 * rank's own registered memory, reused by the next call of the same size
 * (freed, not left to the garbage collector), and both copies are memmoves
 * (host-copy.ts) between memory that was touched before.
 *
 * Registered memory gives a freed block only to an allocation of the same size: each distinct
 * tensor size keeps one block per rank until the world ends (a full registered memory sends the
 * call down the generic path).
 *
 * The heap views are taken and used synchronously: any allocation in the
 * wasm heap (an op, the result's makeOutput) may grow its memory and detach
 * every view of it, and a collective awaits; so the copy in happens before
 * the call, and the copy out right after makeOutput.
 */
import type { AllReduceOptions, Communicator } from "../../comm/types";
import { copyElements } from "../../comm/host-copy";
import { peerMemoryOps } from "../../comm/peer-memory";
import { hasWasmInternals, type WasmBackend } from "../../compute/wasm/tensor-info";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

/** Below this many bytes the generic path is as fast (its arrays come from malloc's warm memory). */
const MIN_BYTES = 1024 * 1024;

/**
 * The reduced tensor, or undefined where this path does not apply (another backend, another dtype, a
 * small tensor, a world without registered memory): then the caller takes the generic path.
 */
export async function registeredTensorAllReduce(tf: Tf, comm: Communicator, tensor: Tensor, options: AllReduceOptions): Promise<Tensor | undefined> {
  if (tensor.isDisposed || tensor.dtype !== "float32" || tensor.size * 4 < MIN_BYTES || options.out !== undefined) return undefined;
  const backend = tf.backend();
  if (tf.getBackend() !== "wasm" || !hasWasmInternals(backend)) return undefined;
  const inPlace = await heapTensorAllReduce(tf, backend, comm, tensor, options);
  if (inPlace) return inPlace;
  let block: Float32Array;
  try {
    block = comm.alloc(Float32Array, tensor.size);
  } catch {
    return undefined; // registered memory is full: the generic path needs none
  }
  if (!(block.buffer instanceof SharedArrayBuffer)) return undefined; // no registered memory here (tcp): a plain array
  try {
    copyElements(block, 0, backend.typedArrayFromHeap(tensor) as Float32Array);
    await comm.allReduce(block, { ...options, out: block });
    const info = backend.makeOutput(tensor.shape, "float32");
    copyElements(backend.typedArrayFromHeap(info) as Float32Array, 0, block);
    return tf.engine().makeTensorFromTensorInfo(info);
  } finally {
    comm.free(block);
  }
}

/**
 * Where peers read rank threads' memory by address (comm/peer-memory.ts): the direct allReduce
 * reads the tensor where it lies in the wasm heap and writes the result into the new tensor's heap
 * memory, with no copy. Undefined where the direct path does not apply (an emulated link, a
 * sub-group, another algorithm asked for): then the registered block's path.
 *
 * The heap views are taken now and read when the call runs (a microtask later, after any calls
 * queued before it): a heap that grew in between detaches them, and the direct allReduce then stops
 * the world naming this rank instead of reading a moved heap.
 */
async function heapTensorAllReduce(tf: Tf, wasm: WasmBackend, comm: Communicator, tensor: Tensor, options: AllReduceOptions): Promise<Tensor | undefined> {
  const ops = peerMemoryOps();
  if (!ops || (options.algorithm !== undefined && options.algorithm !== "direct")) return undefined;
  const info = wasm.makeOutput(tensor.shape, "float32");
  let call: Promise<unknown>;
  try {
    const input = wasm.typedArrayFromHeap(tensor) as Float32Array;
    const out = wasm.typedArrayFromHeap(info) as Float32Array;
    // the output may lie in heap the process never touched (the heap grew for it): its pages faulted
    // in by one system call rather than a fault per page as the sum writes (pages already in place
    // cost a walk of the page table)
    ops.populate(ops.address(out), out.byteLength);
    call = comm.allReduce(input, { ...options, algorithm: "direct", out });
  } catch {
    // refused before anything ran (no direct path here: an emulated link, a sub-group; or bad
    // options): the registered block's path runs the call again and reports a genuine error
    wasm.disposeData(info.dataId);
    return undefined;
  }
  try {
    await call;
  } catch (failed) {
    wasm.disposeData(info.dataId);
    throw failed;
  }
  return tf.engine().makeTensorFromTensorInfo(info);
}
