/**
 * Cuts the host time TF.js's webgpu backend spends per kernel, on the
 * backend instance once it exists (after tf.setBackend("webgpu")).
 *
 * A tiny-GPT step ran 1,421 dispatches and was bound by host time, not GPU
 * time: with Dawn's null backend (no GPU work at all) the step took as long
 * on a CPU-only machine as on a GPU one (docs/compute.md, "Figures
 * behind the code"). Each tuning is its own
 * file:
 *   bind-groups  bind-group-cache.ts  reuse bind groups (costly to create through Dawn's Node binding)
 *   pool         buffer-pool.ts       hand out pooled buffers in a repeatable order, so bind groups recur
 *   uploads      upload.ts            CPU-held tensors (scalar operands) through queue.writeBuffer
 *   flags        (here)               TF.js flags: WEBGPU_CPU_FORWARD false (small ops on CPU-held inputs
 *                                     otherwise run in JavaScript and upload their results),
 *                                     WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE 64 (TF.js: 15); each only where
 *                                     it still has TF.js's default; each shortened the tiny-GPT step on
 *                                     a GPU (docs/compute.md, "Figures behind the code")
 * DISTLAB_WEBGPU_HOST=none keeps TF.js's behaviour; a comma list
 * (e.g. "pool,bind-groups") applies only those.
 */
import { cacheBindGroups, type DeviceLike } from "./bind-group-cache";
import { isBufferManager, reuseOldestFreeBuffer } from "./buffer-pool";
import { uploadThroughWriteBuffer, type UploadingBackend } from "./upload";

export const HOST_TUNINGS = ["bind-groups", "pool", "uploads", "flags"] as const;
export type HostTuning = (typeof HOST_TUNINGS)[number];

export function hostTuningsFromEnv(value: string | undefined): HostTuning[] {
  if (value === undefined || value === "" || value === "all") return [...HOST_TUNINGS];
  if (value === "none") return [];
  const names = value.split(",").map((s) => s.trim());
  for (const name of names) {
    if (!(HOST_TUNINGS as readonly string[]).includes(name)) throw new RangeError(`DISTLAB_WEBGPU_HOST must be all, none or a comma list of ${HOST_TUNINGS.join(", ")}; got ${value}`);
  }
  return names as HostTuning[];
}

/** TF.js's flag store (tf.env()). */
export interface FlagsLike { get(name: string): unknown; set(name: string, value: unknown): void }

/** Flag values for the webgpu backend, each with TF.js's default it replaces. */
export const WEBGPU_FLAGS: ReadonlyArray<{ name: string; value: unknown; stock: unknown }> = [
  { name: "WEBGPU_CPU_FORWARD", value: false, stock: true },
  { name: "WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", value: 64, stock: 15 },
];

interface BackendLike { device?: unknown; bufferManager?: unknown; tensorMap?: unknown; queue?: unknown; uploadToGPU?: unknown }

/** Applies the tunings to `backend` (TF.js's WebGPUBackend); returns those applied now ("host:NAME"). */
export function tuneWebGpuBackend(backend: BackendLike, env: NodeJS.ProcessEnv = process.env, flags?: FlagsLike): string[] {
  const applied: string[] = [];
  for (const name of hostTuningsFromEnv(env.DISTLAB_WEBGPU_HOST)) {
    let done = false;
    if (name === "bind-groups" && typeof (backend.device as DeviceLike | undefined)?.createBindGroup === "function") {
      const device = backend.device as DeviceLike & { [key: symbol]: unknown };
      done = device[Symbol.for("distlab.compute.bindGroupCache")] === undefined;
      cacheBindGroups(device);
    } else if (name === "pool" && isBufferManager(backend.bufferManager)) {
      done = reuseOldestFreeBuffer(backend.bufferManager);
    } else if (name === "uploads" && typeof backend.uploadToGPU === "function" && backend.tensorMap !== undefined && backend.queue !== undefined) {
      done = uploadThroughWriteBuffer(backend as unknown as UploadingBackend);
    } else if (name === "flags" && flags !== undefined) {
      for (const flag of WEBGPU_FLAGS) {
        if (flags.get(flag.name) !== flag.stock) continue;
        flags.set(flag.name, flag.value);
        done = true;
      }
    }
    if (done) applied.push(`host:${name}`);
  }
  return applied;
}
