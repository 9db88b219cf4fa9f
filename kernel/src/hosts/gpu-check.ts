/**
 * Whether the GPU a hostfile's `gpus=` gives a rank is on the agent's host:
 * the agent looks for its device node (/dev/nvidiaN, as `--backend gpus`
 * does: gpu-isolation.ts) before it starts the rank, so a hostfile naming a
 * GPU the host lacks fails with the host and the GPU named instead of a rank
 * that silently runs on no GPU (CUDA_VISIBLE_DEVICES of a missing GPU hides
 * every GPU, and the rank would fall back to the CPU).
 *
 * DISTLAB_GPU_DEVICE_DIR replaces /dev (a directory of stand-in nodes,
 * for tests on machines without GPUs).
 */
import { basename } from "node:path";
import { listGpuDeviceNodes } from "../cluster/backends/gpus/gpu-isolation";

export const GPU_DEVICE_DIR_ENV = "DISTLAB_GPU_DEVICE_DIR";

/** Undefined when GPU `gpu`'s device node exists on this host, else why the rank cannot have it (names the GPU, the node and the GPUs there are). */
export function missingGpu(gpu: number, devDir = process.env[GPU_DEVICE_DIR_ENV] || "/dev"): string | undefined {
  const nodes = listGpuDeviceNodes(devDir);
  const wanted = `nvidia${gpu}`;
  if (nodes.some((node) => basename(node) === wanted)) return undefined;
  const present = nodes.length > 0 ? `its GPUs are ${nodes.map((node) => basename(node).slice("nvidia".length)).join(", ")}` : "it has no GPU device nodes";
  return `GPU ${gpu} (hostfile gpus=) is not on this host: no ${devDir.replace(/\/$/, "")}/${wanted}; ${present}`;
}
