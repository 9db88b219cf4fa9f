/**
 * Loads TensorFlow.js inside a rank and picks its backend.
 *
 * Order of preference when the user names none: `tensorflow` (tfjs-node,
 * only if the user installed it), `wasm` (SIMD, loads in worker threads),
 * `cpu` (always there). `webgpu` is only used when asked for, since it needs
 * the `webgpu` npm package and a GPU.
 */
import type { TfBackendName } from "../magics/distributed-spec";

type Tf = typeof import("@tensorflow/tfjs");

export interface LoadedTf {
  tf: Tf;
  /** The backend actually in use, e.g. "wasm". */
  backend: string;
}

export async function loadTf(requested: TfBackendName | undefined): Promise<LoadedTf> {
  const tf = require("@tensorflow/tfjs") as Tf;
  if (requested !== undefined) {
    await registerBackend(tf, requested);
    if (!(await tf.setBackend(requested))) {
      throw new Error(`--tf-backend ${requested}: TensorFlow.js could not initialise the ${requested} backend on this rank`);
    }
    await tf.ready();
    return { tf, backend: tf.getBackend() };
  }
  for (const candidate of ["tensorflow", "wasm", "cpu"] as const) {
    try {
      await registerBackend(tf, candidate);
      if (await tf.setBackend(candidate)) {
        await tf.ready();
        return { tf, backend: tf.getBackend() };
      }
    } catch {
      // Not installed or failed to start here: try the next one.
    }
  }
  throw new Error("TensorFlow.js found no usable backend on this rank (tried tensorflow, wasm, cpu)");
}

/** Makes the backend known to tf; throws with the package to install when it is missing. */
async function registerBackend(tf: Tf, name: TfBackendName): Promise<void> {
  const packages: Record<TfBackendName, string | undefined> = {
    wasm: "@tensorflow/tfjs-backend-wasm",
    cpu: undefined,
    webgpu: "@tensorflow/tfjs-backend-webgpu",
    tensorflow: "@tensorflow/tfjs-node",
  };
  const pkg = packages[name];
  if (pkg === undefined || tf.findBackend(name) !== null) return;
  try {
    require(pkg);
  } catch (error) {
    throw new Error(`--tf-backend ${name}: the npm package ${pkg} is not installed (${(error as Error).message.split("\n")[0]})`);
  }
}
