/**
 * Records distlab's own WGSL dispatches into TF.js's webgpu backend.
 *
 * TF.js programs have one output and go through runWebGPUProgram, which
 * builds a shader key and packs shape uniforms on every call. The fused
 * kernels (Adam's update, layer norm, GELU, causal softmax) need several
 * outputs (a layer norm's gradient is dx, dgain and dbias) and fixed
 * shaders, so they record into the backend's open compute pass themselves,
 * with TF.js's bookkeeping: every bound tensor is marked as used by
 * unsubmitted commands (its buffer is not reused before the submit), the
 * pass is submitted every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches, and
 * under tf.profile each dispatch gets timestamp queries like TF.js's own.
 *
 * TF.js internals it relies on (pinned version; ../tfjs-internals.ts checks
 * each): the WebGPUBackend members of WebGpuBackendInternals below, and the
 * bookkeeping of its recordAndSubmit, which recordDispatch repeats.
 */

export interface TensorInfoLike { dataId: object; dtype: string; shape?: number[]; size?: number }
export interface PassLike {
  setPipeline(pipeline: object): void;
  setBindGroup(index: number, group: object): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
}
export interface PipelineLike { getBindGroupLayout(index: number): object }
interface GpuDeviceLike {
  createShaderModule(descriptor: { code: string }): object;
  createComputePipeline(descriptor: object): PipelineLike;
  createBindGroup(descriptor: object): object;
  createBuffer(descriptor: { size: number; usage: number }): object;
  queue: { writeBuffer(buffer: object, offset: number, data: ArrayBufferView): void };
}

/** The members of TF.js 4.x's WebGPUBackend that distlab's dispatches use (checked before use). */
export interface WebGpuBackendInternals {
  device: GpuDeviceLike;
  tensorMap: { get(dataId: object): { resource: unknown; refCount: number } };
  bufferManager: { acquireBuffer(size: number, usage: number): object };
  commandEncoder: { beginComputePass(descriptor: object): PassLike } | null;
  computePassEncoder: PassLike | null;
  commandQueueOwnedIds: WeakSet<object>;
  uniformPendingDisposal: object[];
  dispatchCountInPass: number;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  refCount(dataId: object): number;
  /** Set while tf.profile times kernels (TF.js's own). */
  activeTimers?: Array<{ name: string; query: Promise<number> }> | null;
  supportTimestampQuery?: boolean;
  querySet?: object;
  querySetCount?: number;
  getQueryTime?(): Promise<number>;
  makeTensorInfo?(shape: number[], dtype: string): TensorInfoLike;
}

export function hasDispatchInternals(backend: object): backend is WebGpuBackendInternals {
  const b = backend as Partial<WebGpuBackendInternals>;
  return b.device !== undefined && b.tensorMap !== undefined && b.bufferManager !== undefined
    && b.commandQueueOwnedIds instanceof WeakSet && Array.isArray(b.uniformPendingDisposal) && typeof b.dispatchCountInPass === "number"
    && typeof b.uploadToGPU === "function" && typeof b.ensureCommandEncoderReady === "function" && typeof b.endComputePassEncoder === "function"
    && typeof b.submitQueue === "function";
}

/** GPUBufferUsage UNIFORM | COPY_DST (the globals exist only once Dawn is loaded). */
export const UNIFORM_COPY_DST = 0x40 | 0x08;
/** WebGPU's default limit on workgroups per dimension. */
export const MAX_GROUPS_PER_DIMENSION = 65535;

const pipelines = new WeakMap<object, Map<string, PipelineLike>>();
const constants = new WeakMap<object, Map<string, object>>();

/** One compute pipeline per (device, WGSL source), entry point `main`. */
export function pipelineFor(device: GpuDeviceLike, code: string): PipelineLike {
  let byCode = pipelines.get(device);
  if (!byCode) pipelines.set(device, (byCode = new Map()));
  let pipeline = byCode.get(code);
  if (!pipeline) {
    pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code }), entryPoint: "main" } });
    byCode.set(code, pipeline);
  }
  return pipeline;
}

/**
 * A uniform buffer holding `words` (16 bytes at least), created once per
 * device and content and never rewritten: sizes and constants that recur
 * every step bind the same buffer, so the bind-group cache hits.
 */
export function constantUniform(device: GpuDeviceLike, words: Uint32Array | Float32Array | ArrayBuffer): object {
  const bytes = new Uint8Array(words instanceof ArrayBuffer ? words : words.buffer.slice(words.byteOffset, words.byteOffset + words.byteLength));
  const key = Array.from(bytes).join(",");
  let byKey = constants.get(device);
  if (!byKey) constants.set(device, (byKey = new Map()));
  let buffer = byKey.get(key);
  if (!buffer) {
    const padded = new Uint8Array(Math.max(16, Math.ceil(bytes.length / 16) * 16));
    padded.set(bytes);
    buffer = device.createBuffer({ size: padded.length, usage: UNIFORM_COPY_DST });
    device.queue.writeBuffer(buffer, 0, padded);
    byKey.set(key, buffer);
  }
  return buffer;
}

/** Workgroup counts (x, y) for `groups` workgroups, split over y past the per-dimension limit; shaders index x + y * num_workgroups.x. */
export function splitGroups(groups: number): [number, number] {
  const y = Math.ceil(groups / MAX_GROUPS_PER_DIMENSION);
  return [Math.ceil(groups / y), y];
}

/** A binding: a tensor (uploaded first, marked as used by the pending commands) or a plain buffer (uniforms). */
export type Binding = TensorInfoLike | { buffer: object };

/**
 * Records one dispatch of `pipeline` with `bindings` (binding i = entry i of
 * group 0) into the backend's open compute pass; submits when the pass
 * holds `submitEvery` dispatches (TF.js's WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE).
 */
export function recordDispatch(backend: WebGpuBackendInternals, pipeline: PipelineLike, bindings: Binding[], groups: [number, number], submitEvery: number, name = "distlab"): void {
  const tensors = bindings.filter((b): b is TensorInfoLike => "dataId" in b);
  for (const t of tensors) backend.uploadToGPU(t.dataId);
  const group = backend.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: bindings.map((b, binding) => ({ binding, resource: { buffer: "dataId" in b ? backend.tensorMap.get(b.dataId).resource : b.buffer } })),
  });
  for (const t of tensors) backend.commandQueueOwnedIds.add(t.dataId);
  backend.ensureCommandEncoderReady();
  const timed = backend.activeTimers != null && backend.supportTimestampQuery === true && backend.getQueryTime !== undefined;
  if (timed) {
    // As TF.js times its own programs: a pass of its own with timestamps at both ends, resolved right after.
    backend.endComputePassEncoder();
    backend.querySet ??= (backend.device as unknown as { createQuerySet(d: object): object }).createQuerySet({ type: "timestamp", count: backend.querySetCount ?? 2 });
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({ timestampWrites: { querySet: backend.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
  }
  backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({});
  const pass = backend.computePassEncoder;
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(groups[0], groups[1], 1);
  backend.dispatchCountInPass++;
  if (timed) {
    backend.endComputePassEncoder();
    backend.activeTimers!.push({ name, query: backend.getQueryTime!() });
  } else if (backend.dispatchCountInPass >= submitEvery) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/** A new float32 tensor of `shape` on the backend, its buffer allocated (the kernels write every element). */
export function newOutput(backend: WebGpuBackendInternals, shape: number[]): TensorInfoLike {
  const info = backend.makeTensorInfo!(shape, "float32");
  if (shape.every((d) => d > 0)) backend.uploadToGPU(info.dataId);
  return info;
}
