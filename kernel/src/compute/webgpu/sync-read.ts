/**
 * `dataSync()` / `arraySync()` of a GPU tensor on the webgpu backend in Node.
 *
 * TF.js's webgpu backend reads a GPU buffer synchronously by drawing it into
 * an OffscreenCanvas, which Node does not have: the read failed with
 * `ReferenceError: OffscreenCanvas is not defined` from deep inside TF.js.
 * A synchronous read cannot be built from Dawn's Node binding either: a
 * buffer's mapAsync resolves only on a later turn of the event loop, which a
 * blocked caller never gives back. So the read keeps working where TF.js
 * still holds the values on the CPU (tensors made from JavaScript arrays,
 * results of ops it ran on the CPU) and otherwise throws an error that says
 * what to do instead: `await t.data()` / `await t.array()`.
 */

/** The part of TF.js's WebGPUBackend this touches. */
interface SyncReadingBackend {
  readSync(dataId: object): unknown;
  tensorMap: { get(dataId: object): { values?: unknown; dtype?: string } | undefined };
  [key: symbol]: unknown;
}

const PATCHED = Symbol.for("distlab.compute.webgpuSyncRead");

export const SYNC_READ_MESSAGE =
  "dataSync()/arraySync() cannot read a tensor held on the GPU: TensorFlow.js's webgpu backend has no synchronous read in Node. " +
  "Read it asynchronously instead: `await t.data()` or `await t.array()` (for a loss: `(await loss.data())[0]`)";

export class GpuSyncReadError extends Error {
  constructor() {
    super(SYNC_READ_MESSAGE);
    this.name = "GpuSyncReadError";
  }
}

/** Wraps `backend.readSync` once; returns whether it did now. */
export function explainSyncReads(backend: SyncReadingBackend): boolean {
  if (backend[PATCHED] !== undefined || typeof backend.readSync !== "function" || backend.tensorMap === undefined) return false;
  const stock = backend.readSync.bind(backend);
  backend[PATCHED] = stock;
  backend.readSync = (dataId: object): unknown => {
    const data = backend.tensorMap.get(dataId);
    // Values still on the CPU (and strings, which never go to the GPU) read as TF.js reads them.
    if (data === undefined || data.values != null || data.dtype === "string") return stock(dataId);
    throw new GpuSyncReadError();
  };
  return true;
}
