/**
 * Adam's update of two variables as one WebGPU dispatch, for the webgpu
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
 * rounding. Variables go two to a dispatch (8 storage buffers, WebGPU's
 * default limit per shader stage): the first slot's workgroups come first.
 */

import { flatGridMain, wgslBindings, type WgslBinding } from "./wgsl-preamble";
import { constantUniform, hasDispatchInternals, pipelineFor, recordDispatch, splitGroups, UNIFORM_COPY_DST, type TensorInfoLike, type WebGpuBackendInternals } from "./dispatch";

export type { WebGpuBackendInternals } from "./dispatch";

export function hasAdamInternals(backend: object): backend is WebGpuBackendInternals {
  return hasDispatchInternals(backend);
}

const WORKGROUP = 256;

/** The update of element i of (x, m, v) from gradient g (WGSL statements; storage pointers cannot be passed to functions). */
const update = (x: string, m: string, v: string, g: string) => /* wgsl */ `
    let gi = ${g}[i];
    let mi = ${m}[i] * h.beta1 + gi * h.oneMinusBeta1;
    let vi = ${v}[i] * h.beta2 + (gi * gi) * h.oneMinusBeta2;
    ${m}[i] = mi;
    ${v}[i] = vi;
    ${x}[i] = ((mi / h.c1) / (sqrt(vi / h.c2) + h.eps)) * (-h.lr) + ${x}[i];`;

/** One variable's buffers: x, m and v written in place, g read; `suffix` tells a second slot's names apart. */
const slotBindings = (suffix: string): WgslBinding[] => [
  [`x${suffix}`, "read_write"],
  [`m${suffix}`, "read_write"],
  [`v${suffix}`, "read_write"],
  [`g${suffix}`, "read"],
];

const HYPER = /* wgsl */ `struct Hyper { lr: f32, beta1: f32, beta2: f32, eps: f32, oneMinusBeta1: f32, oneMinusBeta2: f32, c1: f32, c2: f32 }`;

const SHADER = /* wgsl */ `
${HYPER}
${wgslBindings([...slotBindings(""), ["h", "uniform", "Hyper"], ["n", "uniform", "vec4<u32>"]])}
${flatGridMain(WORKGROUP, /* wgsl */ `
  let i = group * ${WORKGROUP}u + lid;
  if (i >= n.x) { return; }
  ${update("x", "m", "v", "g")}`)}`;

/** Two variables: n = (count 1, count 2, workgroups of the first). */
const PAIR_SHADER = /* wgsl */ `
${HYPER}
${wgslBindings([...slotBindings(""), ...slotBindings("2"), ["h", "uniform", "Hyper"], ["n", "uniform", "vec4<u32>"]])}
${flatGridMain(WORKGROUP, /* wgsl */ `
  if (group < n.z) {
    let i = group * ${WORKGROUP}u + lid;
    if (i < n.x) { ${update("x", "m", "v", "g")} }
  } else {
    let i = (group - n.z) * ${WORKGROUP}u + lid;
    if (i < n.y) { ${update("x2", "m2", "v2", "g2")} }
  }`)}`;

export interface AdamHyper { lr: number; beta1: number; beta2: number; eps: number; c1: number; c2: number }

export interface AdamSlot { x: TensorInfoLike & { size: number }; m: TensorInfoLike; v: TensorInfoLike; g: TensorInfoLike }

/**
 * Records one fused update per slot. Every tensor must be float32, and x, m
 * and v must each own their buffer (refCount 1): they are written in place.
 */
export function recordAdamUpdates(backend: WebGpuBackendInternals, slots: AdamSlot[], hyper: AdamHyper, submitEvery: number): void {
  const device = backend.device;
  // A pooled uniform buffer, released at TF.js's next submit like its own: never rewritten under an unsubmitted dispatch.
  const hyperBuffer = backend.bufferManager.acquireBuffer(32, UNIFORM_COPY_DST);
  device.queue.writeBuffer(hyperBuffer, 0, new Float32Array([hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, 1 - hyper.beta1, 1 - hyper.beta2, hyper.c1, hyper.c2]));
  backend.uniformPendingDisposal.push(hyperBuffer);
  const live = slots.filter((slot) => slot.x.size > 0);
  for (let k = 0; k < live.length; k += 2) {
    const [a, b] = [live[k]!, live[k + 1]];
    const groupsA = Math.ceil(a.x.size / WORKGROUP);
    if (b === undefined) {
      // One constant uniform per element count, shared by all variables of that size.
      const size = constantUniform(device, new Uint32Array([a.x.size, 0, 0, 0]));
      recordDispatch(backend, pipelineFor(device, SHADER), [a.x, a.m, a.v, a.g, { buffer: hyperBuffer }, { buffer: size }], splitGroups(groupsA), submitEvery, "AdamUpdate");
      continue;
    }
    const sizes = constantUniform(device, new Uint32Array([a.x.size, b.x.size, groupsA, 0]));
    const bindings = [a.x, a.m, a.v, a.g, b.x, b.m, b.v, b.g, { buffer: hyperBuffer }, { buffer: sizes }];
    recordDispatch(backend, pipelineFor(device, PAIR_SHADER), bindings, splitGroups(groupsA + Math.ceil(b.x.size / WORKGROUP)), submitEvery, "AdamUpdate");
  }
}
