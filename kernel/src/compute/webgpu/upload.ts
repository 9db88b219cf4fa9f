/**
 * Uploads of CPU-held tensor data through queue.writeBuffer.
 *
 * TF.js's webgpu backend uploads a tensor written from the CPU (every
 * scalar operand such as the 0.5 of `tf.mul(x, 0.5)` is one) through a fresh
 * mapped staging buffer that it destroys after the copy, and the copy ends
 * the open compute pass: a buffer creation, a map, a copy and a new pass
 * for each scalar. writeBuffer into a pooled buffer costs a fraction of the
 * creation alone through Dawn's Node binding (figures: docs/compute.md,
 * "Figures behind the code") and keeps the pass open.
 *
 * Ordering: writeBuffer runs on the queue timeline before the commands
 * TF.js has recorded but not yet submitted. The destination comes from the
 * pool's free list, and TF.js returns a buffer to that list only once no
 * unsubmitted command uses it (it defers releases to its next submit), so
 * nothing recorded earlier can read the new contents too early.
 *
 * TF.js internals it relies on (pinned version; ../tfjs-internals.ts checks
 * them): uploadToGPU(dataId) and the tensorMap entry it fills (values,
 * resource, dtype, shape), which the replacement fills the same way.
 */

interface TensorData {
  dtype: string;
  shape: number[];
  values: ArrayLike<number> | null | undefined;
  resource: unknown;
}

export interface UploadingBackend {
  tensorMap: { get(dataId: object): TensorData };
  bufferManager: { acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): object };
  queue: { writeBuffer(buffer: object, offset: number, data: ArrayBufferView, dataOffset?: number, size?: number): void };
  uploadToGPU(dataId: object): void;
}

const INSTALLED = Symbol.for("distlab.compute.writeBufferUploads");

/** GPUBufferUsage.STORAGE | COPY_SRC | COPY_DST, as TF.js allocates tensor buffers. */
const TENSOR_USAGE = 0x80 | 0x04 | 0x08;

/** Replaces `backend.uploadToGPU`; idempotent. Returns whether it was installed now. */
export function uploadThroughWriteBuffer(backend: UploadingBackend): boolean {
  if ((backend as { [INSTALLED]?: true })[INSTALLED]) return false;
  const stock = backend.uploadToGPU.bind(backend);
  backend.uploadToGPU = (dataId: object) => {
    const data = backend.tensorMap.get(dataId);
    const count = data.shape.reduce((a, b) => a * b, 1);
    if (data.resource != null || !data.values || count === 0 || (data.dtype !== "float32" && data.dtype !== "int32" && data.dtype !== "bool")) return stock(dataId);
    // Same layout as TF.js: 4 bytes per element, bool as int32.
    const values = data.values;
    const typed = data.dtype === "float32"
      ? (values instanceof Float32Array ? values : Float32Array.from(values))
      : (values instanceof Int32Array ? values : Int32Array.from(values));
    const buffer = backend.bufferManager.acquireBuffer(count * 4, TENSOR_USAGE);
    backend.queue.writeBuffer(buffer, 0, typed, 0, count);
    data.values = null;
    data.resource = buffer;
  };
  Object.defineProperty(backend, INSTALLED, { value: true });
  return true;
}
