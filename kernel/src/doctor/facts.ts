/**
 * What `distlab doctor` learns about a machine: plain data, gathered by
 * probes.ts on the real machine and made up by hand in the unit tests, so the
 * decisions in diagnose.ts can be tested for machines we do not have.
 */

/** One GPU check that either worked or says why not. */
export type Outcome = { ok: true; detail: string } | { ok: false; reason: string };

export interface MachineFacts {
  /** process.versions.node, e.g. "20.19.2" */
  nodeVersion: string;
  platform: NodeJS.Platform;
  /** /etc/os-release's ID and ID_LIKE (e.g. "ubuntu", ["debian"]); undefined off Linux or without the file. */
  distro?: { id: string; idLike: string[] };
  /** npm packages the kernel can load, by name: true when require.resolve finds them from the kernel. */
  packages: Record<OptionalPackage, boolean>;
  /** GPU device nodes: /dev/nvidia0 ..., /dev/dri/renderD128 ..., /dev/dxg (WSL). */
  gpuDeviceNodes: string[];
  /** NVIDIA GPUs among them (/dev/nvidiaN): what `--backend gpus` gives one rank each. */
  nvidiaGpus: string[];
  /** Path of the Vulkan loader library (libvulkan.so.1) when found. */
  vulkanLoader?: string;
  /** Vulkan driver manifests (ICD JSON files) found, e.g. /usr/share/vulkan/icd.d/nvidia_icd.json. */
  vulkanDrivers: string[];
  /** Dawn's answer to requestAdapter(); undefined when it was not asked (no GPU node, no webgpu package). */
  gpuAdapter?: Outcome;
  /** Hiding one GPU from a rank in a private mount namespace; undefined when not tried (fewer than 2 NVIDIA GPUs). */
  gpuIsolation?: Outcome;
  /**
   * The BLAS the wasm backend's matrix products go through (compute/cpu-blas.ts), or why there is none;
   * `misfit` where it is an OpenBLAS running pre-AVX2 kernels on a wider core (cpu-blas.ts's openblasMisfit).
   * Optional: older callers leave it out.
   */
  cpuBlas?: Outcome & { misfit?: { took: string; coreType: string } };
  /** The wasm backend's elementwise passes in native code (compute/cpu-vector.ts): the instruction set, or why not. */
  cpuVector?: Outcome;
  /** The thread world's native collective addons (comm/peer-memory.ts, comm/dropped-results.ts), or which is missing. Optional: older callers leave it out. */
  threadCollectives?: Outcome;
  /** Launchers and tools by name, with their path when on PATH. */
  commands: Record<LauncherCommand, string | undefined>;
  jupyter: JupyterFacts;
}

export type OptionalPackage = "@tensorflow/tfjs-backend-wasm" | "@tensorflow/tfjs-backend-webgpu" | "webgpu" | "@tensorflow/tfjs-node" | "@tensorflow/tfjs-node-gpu";
export const OPTIONAL_PACKAGES: readonly OptionalPackage[] = [
  "@tensorflow/tfjs-backend-wasm", "@tensorflow/tfjs-backend-webgpu", "webgpu", "@tensorflow/tfjs-node", "@tensorflow/tfjs-node-gpu",
];

export type LauncherCommand = "ssh" | "unshare" | "python3";
export const LAUNCHER_COMMANDS: readonly LauncherCommand[] = ["ssh", "unshare", "python3"];

export interface JupyterFacts {
  /** The `jupyter` command found (PATH, or the active environment's bin). */
  command?: string;
  /** The distlab kernelspec Jupyter lists: its folder and the argv it starts. */
  kernelspec?: { resourceDir: string; argv: string[] };
  /** The @distlab/timeline line of `jupyter labextension list`, when there is one. */
  labextension?: { enabled: boolean; ok: boolean; line: string };
  /** Why asking Jupyter failed, when it did. */
  error?: string;
}
