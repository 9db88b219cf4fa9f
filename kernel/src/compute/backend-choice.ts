/**
 * Which TensorFlow.js backend a rank (or the notebook) runs on.
 *
 * Named by the user (`--tf-backend`): that backend or an error saying why
 * not. Automatic, in order: webgpu where Dawn finds a GPU adapter,
 * tensorflow where the user installed @tensorflow/tfjs-node(-gpu), wasm,
 * cpu. Every backend loaded here gets distlab's kernel overrides for it.
 */
import * as path from "node:path";
import type { TfBackendName } from "./backend-names";
import { cpuBlas } from "./cpu-blas";
import { cpuVector } from "./cpu-vector";
import { prepareWebGpu } from "./webgpu";
import { explainSyncReads } from "./webgpu/sync-read";
import { installWasmOverrides } from "./wasm/overrides";
import { tuneWebGpuBackend } from "./webgpu/host-tuning";
import { installWebGpuOverrides } from "./webgpu/overrides";

type Tf = typeof import("@tensorflow/tfjs");

export const AUTO_ORDER: readonly TfBackendName[] = ["webgpu", "tensorflow", "wasm", "cpu"];

export interface ChosenBackend {
  backend: string;
  /** Where the backend computes, e.g. "gpu:nvidia nvidia-h200 (NVIDIA: 580.159.04 ...)", "cpu:wasm simd". */
  device: string;
  /** Kernel overrides installed for this backend (names of the kernels; "host:..." for webgpu's host tunings). */
  overrides: string[];
  /** Why each backend tried before this one was passed over (automatic choice only). */
  skipped: string[];
}

const PACKAGES: Record<TfBackendName, string | undefined> = {
  wasm: "@tensorflow/tfjs-backend-wasm",
  cpu: undefined,
  webgpu: "@tensorflow/tfjs-backend-webgpu",
  // tfjs-node registers the backend named "tensorflow"; the GPU build registers the same name.
  tensorflow: "@tensorflow/tfjs-node",
};

/** Loads the package that registers `name` with tf; throws a message naming what is missing. */
async function register(tf: Tf, name: TfBackendName): Promise<string> {
  let device = `cpu:${name}`;
  if (name === "webgpu") device = `gpu:${(await prepareWebGpu()).description}`;
  const pkg = PACKAGES[name];
  if (pkg !== undefined && tf.findBackendFactory(name) === null) {
    const candidates = name === "tensorflow" ? [pkg, "@tensorflow/tfjs-node-gpu"] : [pkg];
    let loaded = false;
    let reason = "";
    for (const candidate of candidates) {
      try {
        require(candidate);
        loaded = true;
        if (candidate.endsWith("-gpu")) device = "gpu:tensorflow (CUDA)";
        break;
      } catch (error) {
        reason = (error as Error).message.split("\n")[0] ?? "";
      }
    }
    if (!loaded) throw new Error(`the npm package ${candidates.join(" or ")} is not installed (${reason})`);
  }
  return device;
}

async function activate(tf: Tf, name: TfBackendName): Promise<ChosenBackend> {
  const device = await register(tf, name);
  const overrides = name === "wasm" ? installWasmOverrides(tf) : name === "webgpu" ? installWebGpuOverrides(tf) : [];
  if (!(await tf.setBackend(name))) throw new Error(`TensorFlow.js could not initialise the ${name} backend`);
  await tf.ready();
  // Host-side tunings patch the backend instance, which exists only now.
  if (name === "webgpu") overrides.push(...tuneWebGpuBackend(tf.backend() as never, process.env, tf.env()));
  if (name === "webgpu" && explainSyncReads(tf.backend() as never)) overrides.push("sync-read:explained");
  const simd = name === "wasm" && (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) ? " simd" : "";
  return { backend: tf.getBackend(), device: `${device}${simd}${name === "wasm" ? matMulNote() + vectorNote() : ""}`, overrides, skipped: [] };
}

/**
 * ", matMul on <library>" where the wasm backend's products go through the machine's BLAS
 * (cpu-blas.ts). A bad DISTLAB_CPU_BLAS setting is shown here and fails the first product with its
 * message; it must not fail the backend, or automatic choice would fall to the cpu backend.
 */
function matMulNote(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DISTLAB_WASM_MATMUL === "stock") return "";
  try {
    const blas = cpuBlas();
    return blas ? `, matMul on ${path.basename(blas.library)}` : "";
  } catch (error) {
    return `, matMul failing: ${(error as Error).message}`;
  }
}

/** ", vector passes <level>" where the wasm backend's GELU runs natively (cpu-vector.ts); a bad DISTLAB_CPU_VECTOR is shown, as matMulNote shows a bad BLAS setting. */
function vectorNote(): string {
  try {
    const vector = cpuVector();
    return vector ? `, vector passes ${vector.isa()}` : "";
  } catch (error) {
    return `, vector passes failing: ${(error as Error).message}`;
  }
}

export async function chooseBackend(tf: Tf, requested?: TfBackendName): Promise<ChosenBackend> {
  if (requested !== undefined) {
    try {
      return await activate(tf, requested);
    } catch (error) {
      throw new Error(`--tf-backend ${requested}: ${(error as Error).message}`);
    }
  }
  const skipped: string[] = [];
  for (const candidate of AUTO_ORDER) {
    try {
      return { ...(await activate(tf, candidate)), skipped };
    } catch (error) {
      skipped.push(`${candidate}: ${(error as Error).message}`);
    }
  }
  throw new Error(`TensorFlow.js found no usable backend (${skipped.join("; ")})`);
}
