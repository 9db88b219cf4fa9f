// The webgpu backend's readSync in Node: values TF.js holds on the CPU read as before; a tensor
// only on the GPU fails with an error that says to use `await t.data()` instead of TF.js's
// `ReferenceError: OffscreenCanvas is not defined`. (On a GPU machine bench/gpu/kernel-e2e.sh
// checks the same through a real rank.) The backend here is TF.js's cpu backend, whose tensorMap
// (`data`) and readSync stand for webgpu's; a tensor "on the GPU" is one whose CPU values are gone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { explainSyncReads, GpuSyncReadError } from "../../kernel/src/compute/webgpu/sync-read";

test("a synchronous read of a GPU-only tensor names the async read to use; CPU-held values still read", () => {
  const backend = new MathBackendCPU();
  const cpuHeld = backend.write(new Float32Array([1, 2, 3]), [3], "float32");
  const gpuOnly = backend.write(new Float32Array([4, 5]), [2], "float32");
  const tensorMap = backend.data as unknown as { get(id: object): { values?: unknown } };
  const webgpuLike = { tensorMap, readSync: (id: object): unknown => backend.readSync(id) };
  const entry = tensorMap.get(gpuOnly);
  const values = entry.values;
  entry.values = null; // as webgpu keeps a GPU result: a buffer, no CPU values
  assert.equal(explainSyncReads(webgpuLike as never), true);
  assert.equal(explainSyncReads(webgpuLike as never), false, "wrapped once");
  assert.deepEqual(Array.from(webgpuLike.readSync(cpuHeld) as Float32Array), [1, 2, 3]);
  assert.throws(() => webgpuLike.readSync(gpuOnly), (error: Error) => error instanceof GpuSyncReadError && /await t\.data\(\)/.test(error.message));
  entry.values = values;
});
