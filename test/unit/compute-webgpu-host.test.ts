// The webgpu backend's host-side tunings (kernel/src/compute/webgpu/
// host-tuning.ts) against stand-ins of Dawn's device and TF.js's buffer pool
// and backend, and the Mean gradient (webgpu/mean-gradient.ts) against
// TF.js's own on the cpu backend. On a GPU, bench/gpu/webgpu-bench.ts checks
// that training gives the same losses with and without them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cacheBindGroups, type DeviceLike } from "../../kernel/src/compute/webgpu/bind-group-cache";
import { reuseOldestFreeBuffer } from "../../kernel/src/compute/webgpu/buffer-pool";
import { hostTuningsFromEnv, tuneWebGpuBackend } from "../../kernel/src/compute/webgpu/host-tuning";
import { meanGradient } from "../../kernel/src/compute/webgpu/mean-gradient";
import { uploadThroughWriteBuffer, type UploadingBackend } from "../../kernel/src/compute/webgpu/upload";
import { tf, values } from "./compute-backends";

function fakeDevice() {
  let created = 0;
  const device: DeviceLike & { created: () => number } = {
    created: () => created,
    createBindGroup: () => ({ n: created++ }),
    createComputePipeline: () => ({ getBindGroupLayout: () => ({}) }), // a new layout object per call, as Dawn's
    createComputePipelineAsync: async () => ({ getBindGroupLayout: () => ({}) }),
  };
  return device;
}

test("bind groups: the same layout and buffers give the same group; other buffers, offsets or layouts a new one", async () => {
  const device = fakeDevice();
  const stats = cacheBindGroups(device, 3);
  assert.equal(cacheBindGroups(device), stats, "installing twice is a no-op");
  const pipeline = device.createComputePipeline({});
  assert.equal(pipeline.getBindGroupLayout(0), pipeline.getBindGroupLayout(0), "layouts are memoized per pipeline");
  const other = (await device.createComputePipelineAsync({})).getBindGroupLayout(0);
  const [a, b, u] = [{ size: 4 }, { size: 4 }, { size: 16 }];
  const group = (layout: object, x: object, offset = 0) => device.createBindGroup({ layout, entries: [{ binding: 0, resource: { buffer: x } }, { binding: 1, resource: { buffer: u, offset, size: 16 } }] });
  const layout = pipeline.getBindGroupLayout(0);
  const first = group(layout, a);
  assert.equal(group(layout, a), first);
  assert.notEqual(group(layout, b), first, "another buffer");
  assert.notEqual(group(layout, a, 256), first, "another offset");
  assert.notEqual(group(other, a), first, "another layout");
  assert.deepEqual(stats(), { hits: 1, misses: 4, uncached: 0, size: 1 }, "the cache was emptied when it reached 3 entries");
  device.createBindGroup({ layout, entries: [{ binding: 0, resource: { label: "a texture view" } }] });
  device.createBindGroup({ layout, entries: [{ binding: 0, resource: { label: "a texture view" } }] });
  assert.equal(stats().uncached, 2, "resources other than buffers are not cached");
});

/** TF.js 4.x's BufferManager, reduced to what the pool tuning relies on (stack-like free lists). */
function fakeManager() {
  let created = 0;
  const manager = {
    freeBuffers: new Map<string, object[]>(), usedBuffers: new Map<string, object[]>(), numFreeBuffers: 0, numUsedBuffers: 0, numBytesUsed: 0,
    acquireBuffer(size: number, usage: number) {
      const key = `${size}_${usage}`;
      const free = manager.freeBuffers.get(key) ?? manager.freeBuffers.set(key, []).get(key)!;
      const buffer = free.length > 0 ? (manager.numFreeBuffers--, free.pop()!) : { n: created++ };
      (manager.usedBuffers.get(key) ?? manager.usedBuffers.set(key, []).get(key)!).push(buffer);
      manager.numUsedBuffers++;
      manager.numBytesUsed += size;
      return buffer;
    },
    releaseBuffer(buffer: object, size: number, usage: number) {
      const key = `${size}_${usage}`;
      const used = manager.usedBuffers.get(key)!;
      used.splice(used.indexOf(buffer), 1);
      manager.numUsedBuffers--;
      manager.numBytesUsed -= size;
      manager.freeBuffers.get(key)!.push(buffer);
      manager.numFreeBuffers++;
    },
  };
  return manager;
}

test("buffer pool: the free buffer created first is handed out, whatever order they were freed in", () => {
  const manager = fakeManager();
  assert.equal(reuseOldestFreeBuffer(manager), true);
  assert.equal(reuseOldestFreeBuffer(manager), false, "installing twice is a no-op");
  const [a, b, c] = [manager.acquireBuffer(64, 1), manager.acquireBuffer(64, 1), manager.acquireBuffer(64, 1)];
  for (const order of [[a, b, c], [c, b, a], [b, c, a]]) {
    for (const buffer of order) manager.releaseBuffer(buffer, 64, 1);
    assert.deepEqual([manager.acquireBuffer(64, 1), manager.acquireBuffer(64, 1), manager.acquireBuffer(64, 1)], [a, b, c], `freed as ${order.map((x) => (x as { n: number }).n)}`);
  }
  assert.equal(manager.numFreeBuffers, 0);
  assert.equal(manager.numUsedBuffers, 3);
  assert.equal(manager.numBytesUsed, 3 * 64);
  assert.notEqual(manager.acquireBuffer(128, 1), a, "another size is another list");
});

test("uploads: float32, int32 and bool data go through writeBuffer into a pooled buffer; other cases take TF.js's path", () => {
  const writes: string[] = [];
  const data = new Map<object, { dtype: string; shape: number[]; values: ArrayLike<number> | null; resource: unknown }>();
  const stockCalls: object[] = [];
  const backend: UploadingBackend = {
    tensorMap: { get: (id) => data.get(id)! },
    bufferManager: { acquireBuffer: (size, usage) => ({ size, usage }) },
    queue: { writeBuffer: (_buffer, _offset, view, _dataOffset, size) => writes.push(`${view.constructor.name} ${size}`) },
    uploadToGPU: (id) => { stockCalls.push(id); },
  };
  assert.equal(uploadThroughWriteBuffer(backend), true);
  const ids = [{}, {}, {}, {}, {}];
  data.set(ids[0]!, { dtype: "float32", shape: [2, 3], values: new Float32Array(6), resource: null });
  data.set(ids[1]!, { dtype: "int32", shape: [4], values: new Int32Array(4), resource: null });
  data.set(ids[2]!, { dtype: "bool", shape: [3], values: new Uint8Array([1, 0, 1]), resource: null });
  data.set(ids[3]!, { dtype: "float32", shape: [2], values: null, resource: { already: "on the GPU" } });
  data.set(ids[4]!, { dtype: "complex64", shape: [1], values: new Float32Array(2), resource: null });
  for (const id of ids) backend.uploadToGPU(id);
  assert.deepEqual(writes, ["Float32Array 6", "Int32Array 4", "Int32Array 3"]);
  assert.deepEqual(data.get(ids[0]!)!.resource, { size: 24, usage: 0x80 | 0x04 | 0x08 }, "a storage buffer as TF.js allocates them");
  assert.equal(data.get(ids[0]!)!.values, null, "the CPU copy is dropped, as TF.js does after an upload");
  assert.deepEqual(stockCalls, [ids[3], ids[4]]);
});

test("DISTLAB_WEBGPU_HOST: all by default, none, or a list; a wrong name is a RangeError naming the variable", () => {
  assert.deepEqual(hostTuningsFromEnv(undefined), ["bind-groups", "pool", "uploads", "flags"]);
  assert.deepEqual(hostTuningsFromEnv("none"), []);
  assert.deepEqual(hostTuningsFromEnv("pool, bind-groups"), ["pool", "bind-groups"]);
  assert.throws(() => hostTuningsFromEnv("pools"), /DISTLAB_WEBGPU_HOST must be/);
  assert.deepEqual(tuneWebGpuBackend({}, { DISTLAB_WEBGPU_HOST: "bind-groups,pool,uploads" }), [], "a backend without TF.js's webgpu internals is left alone");
});

test("flags: TF.js's defaults for CPU forwarding and the submit batch are replaced, values set by the user kept", () => {
  const store = new Map<string, unknown>([["WEBGPU_CPU_FORWARD", true], ["WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", 15]]);
  const flags = { get: (name: string) => store.get(name), set: (name: string, value: unknown) => void store.set(name, value) };
  assert.deepEqual(tuneWebGpuBackend({}, { DISTLAB_WEBGPU_HOST: "flags" }, flags), ["host:flags"]);
  assert.deepEqual(Object.fromEntries(store), { WEBGPU_CPU_FORWARD: false, WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: 64 });
  store.set("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", 8);
  store.set("WEBGPU_CPU_FORWARD", true);
  tuneWebGpuBackend({}, {}, flags);
  assert.equal(store.get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE"), 8, "a value other than TF.js's default is the user's");
});

test("the Mean gradient gives TF.js's values exactly (axes last, several, negative, all), on cpu", async () => {
  await tf.setBackend("cpu");
  const stock = tf.getGradient("Mean")!;
  const cases: Array<number | number[] | undefined> = [-1, [0, 2], 1, undefined];
  const grads = () => cases.map((axis) => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.mean(x, axis, axis !== 1), values(axis === undefined ? [] : axis === 1 ? [3, 5] : axis === -1 ? [3, 4, 1] : [1, 4, 1], 7))))(values([3, 4, 5], 8)));
  const expected = tf.tidy(() => grads().map((g) => g.dataSync()));
  try {
    tf.registerGradient(meanGradient(tf));
    const ours = tf.tidy(() => grads().map((g) => g.dataSync()));
    expected.forEach((e, i) => assert.deepEqual(ours[i], e, `axis ${JSON.stringify(cases[i])}`));
  } finally {
    tf.registerGradient(stock);
  }
});
