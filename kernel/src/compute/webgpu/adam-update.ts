/**
 * Adam's update of one variable as one WebGPU dispatch, for the webgpu
 * backend of TF.js: reads the gradient and writes the first moment m, the
 * second moment v and the variable in place.
 *
 *   m <- beta1 m + (1 - beta1) g
 *   v <- beta2 v + (1 - beta2) g^2
 *   x <- x - lr (m / c1) / (sqrt(v / c2) + eps)      c1 = 1 - beta1^t, c2 = 1 - beta2^t
 *
 * tf.train.adam computes the same with 14 kernels per variable (each a
 * dispatch, most with a scalar operand uploaded from the CPU): 756 of the
 * tiny GPT's 1,421 dispatches per step, each costing host time in TF.js and
 * Dawn. TF.js programs have one output, so this records its dispatches
 * itself into the backend's open compute pass, with TF.js's bookkeeping
 * (buffers used by unsubmitted commands are not reused before the submit;
 * the pass is submitted every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches).
 * The operation order follows tf.train.adam's, so results agree to float32
 * rounding.
 */

interface TensorInfoLike { dataId: object; dtype: string; size: number }
interface PassLike {
  setPipeline(pipeline: object): void;
  setBindGroup(index: number, group: object): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
}
interface GpuDeviceLike {
  createShaderModule(descriptor: { code: string }): object;
  createComputePipeline(descriptor: object): { getBindGroupLayout(index: number): object };
  createBindGroup(descriptor: object): object;
  createBuffer(descriptor: { size: number; usage: number }): object;
  queue: { writeBuffer(buffer: object, offset: number, data: ArrayBufferView): void };
}

/** The members of TF.js 4.x's WebGPUBackend this file uses (checked before use). */
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
}

export function hasAdamInternals(backend: object): backend is WebGpuBackendInternals {
  const b = backend as Partial<WebGpuBackendInternals>;
  return b.device !== undefined && b.tensorMap !== undefined && b.bufferManager !== undefined
    && b.commandQueueOwnedIds instanceof WeakSet && Array.isArray(b.uniformPendingDisposal) && typeof b.dispatchCountInPass === "number"
    && typeof b.uploadToGPU === "function" && typeof b.ensureCommandEncoderReady === "function" && typeof b.endComputePassEncoder === "function"
    && typeof b.submitQueue === "function";
}

const WORKGROUP = 256;
const MAX_GROUPS_PER_DIMENSION = 65535;

const SHADER = /* wgsl */ `
struct Hyper { lr: f32, beta1: f32, beta2: f32, eps: f32, oneMinusBeta1: f32, oneMinusBeta2: f32, c1: f32, c2: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<uniform> h: Hyper;
@group(0) @binding(5) var<uniform> n: vec4<u32>;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = id.x + id.y * groups.x * ${WORKGROUP}u;
  if (i >= n.x) { return; }
  let gi = g[i];
  let mi = m[i] * h.beta1 + gi * h.oneMinusBeta1;
  let vi = v[i] * h.beta2 + (gi * gi) * h.oneMinusBeta2;
  m[i] = mi;
  v[i] = vi;
  x[i] = ((mi / h.c1) / (sqrt(vi / h.c2) + h.eps)) * (-h.lr) + x[i];
}`;

/** GPUBufferUsage values (the globals exist only once Dawn is loaded). */
const UNIFORM_COPY_DST = 0x40 | 0x08;

export interface AdamHyper { lr: number; beta1: number; beta2: number; eps: number; c1: number; c2: number }

export interface AdamSlot { x: TensorInfoLike; m: TensorInfoLike; v: TensorInfoLike; g: TensorInfoLike }

const pipelines = new WeakMap<object, { getBindGroupLayout(index: number): object }>();
const sizeUniforms = new WeakMap<object, Map<number, object>>();

function pipelineFor(device: GpuDeviceLike) {
  let pipeline = pipelines.get(device);
  if (!pipeline) {
    pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code: SHADER }), entryPoint: "main" } });
    pipelines.set(device, pipeline);
  }
  return pipeline;
}

/** One constant uniform buffer per element count, shared by all variables of that size. */
function sizeUniform(device: GpuDeviceLike, count: number): object {
  let bySize = sizeUniforms.get(device);
  if (!bySize) sizeUniforms.set(device, (bySize = new Map()));
  let buffer = bySize.get(count);
  if (!buffer) {
    buffer = device.createBuffer({ size: 16, usage: UNIFORM_COPY_DST });
    device.queue.writeBuffer(buffer, 0, new Uint32Array([count, 0, 0, 0]));
    bySize.set(count, buffer);
  }
  return buffer;
}

/**
 * Records one fused update per slot. Every tensor must be float32, and x, m
 * and v must each own their buffer (refCount 1): they are written in place.
 */
export function recordAdamUpdates(backend: WebGpuBackendInternals, slots: AdamSlot[], hyper: AdamHyper, submitEvery: number): void {
  const device = backend.device;
  const pipeline = pipelineFor(device);
  const layout = pipeline.getBindGroupLayout(0);
  // A pooled uniform buffer, released at TF.js's next submit like its own: never rewritten under an unsubmitted dispatch.
  const hyperBuffer = backend.bufferManager.acquireBuffer(32, UNIFORM_COPY_DST);
  device.queue.writeBuffer(hyperBuffer, 0, new Float32Array([hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, 1 - hyper.beta1, 1 - hyper.beta2, hyper.c1, hyper.c2]));
  backend.uniformPendingDisposal.push(hyperBuffer);
  for (const slot of slots) {
    const count = slot.x.size;
    if (count === 0) continue;
    const tensors = [slot.x, slot.m, slot.v, slot.g];
    for (const t of tensors) backend.uploadToGPU(t.dataId);
    const group = device.createBindGroup({
      layout,
      entries: [
        ...tensors.map((t, binding) => ({ binding, resource: { buffer: backend.tensorMap.get(t.dataId).resource } })),
        { binding: 4, resource: { buffer: hyperBuffer } },
        { binding: 5, resource: { buffer: sizeUniform(device, count) } },
      ],
    });
    for (const t of tensors) backend.commandQueueOwnedIds.add(t.dataId);
    backend.ensureCommandEncoderReady();
    backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({});
    const pass = backend.computePassEncoder;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    const groups = Math.ceil(count / WORKGROUP);
    const y = Math.ceil(groups / MAX_GROUPS_PER_DIMENSION);
    pass.dispatchWorkgroups(Math.ceil(groups / y), y, 1);
    backend.dispatchCountInPass++;
    if (backend.dispatchCountInPass >= submitEvery) {
      backend.endComputePassEncoder();
      backend.submitQueue();
    }
  }
}
