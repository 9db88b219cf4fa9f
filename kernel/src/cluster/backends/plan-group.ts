/**
 * From a cell's flags to the group that runs it: which shape each
 * `--backend` gives, the limits each puts on `-n`, and how each starts its
 * ranks. Every refusal names the flag at fault.
 */
import { NotAvailableError, UsageError } from "../../errors";
import type { DistributedOptions } from "../../magics/distributed-spec";
import { defaultRankMemoryBytes } from "../../magics/memory-size";
import { MAX_THREAD_RANKS } from "../comm-world";
import { checkGpuIsolation, gpuRankLaunch, listGpuDeviceNodes, unshareFlags } from "./gpus/gpu-isolation";
import { nodeRankCommand } from "./processes/process-rank-handle";
import { createProcessGroup } from "./processes/process-group";
import type { GroupShape, RankEvent } from "../rank-messages";
import type { RankGroup } from "../kernel-side/rank-group";
import { createThreadGroup } from "./threads/thread-group";
import { createHostGroup } from "../../hosts/host-group";
import { parseHostSpec } from "../../hosts/host-spec";
import { readTokenFile } from "../../hosts/token";
import { packageVersion } from "../../version";
import { planHostGroup } from "../../hosts/host-plan";

export interface BackendOptions {
  /** Where GPU device nodes are looked for (default /dev); a test may point it at stand-in files. */
  gpuDeviceDir?: string;
}

export interface GroupPlan {
  shape: GroupShape;
  /** Printed under the cell (stderr) when this plan starts a new group. */
  startNote?: string;
  /** Starts the group's ranks (lazily: each starts on the first cell's prepare). */
  start(onEvent: (rank: number, event: RankEvent) => void): RankGroup;
}

export function planGroup(options: DistributedOptions, backend: BackendOptions = {}): GroupPlan {
  const common = {
    ...(options.link ? { link: options.link } : {}),
    ...(options.tfBackend ? { tfBackend: options.tfBackend } : {}),
    memoryCapBytes: options.memoryBytes ?? defaultRankMemoryBytes(options.workers),
  };
  switch (options.backend) {
    case "threads": {
      if (options.workers > MAX_THREAD_RANKS) {
        throw new UsageError(`%%distributed: -n ${options.workers} is more than the threads backend runs (at most ${MAX_THREAD_RANKS}: shared-memory channels grow with N^2); use --backend processes`, "-n");
      }
      const shape: GroupShape = { size: options.workers, backend: "threads", ...common };
      return { shape, start: (onEvent) => createThreadGroup(shape, onEvent) };
    }
    case "processes": {
      const shape: GroupShape = { size: options.workers, backend: "processes", ...common };
      return { shape, start: (onEvent) => createProcessGroup(shape, onEvent) };
    }
    case "gpus":
      return planGpuGroup(options, backend.gpuDeviceDir ?? "/dev");
    case "hosts":
      return planHostGroup(options, common);
  }
}

/**
 * One process per rank, rank r on GPU r mod G (G GPU device nodes); TensorFlow.js on webgpu unless
 * --tf-backend says otherwise. -n defaults to G. With -n above G ranks share GPUs round-robin, as
 * torchrun's processes do when there are more of them than devices; the cell says so when the group starts.
 */
function planGpuGroup(options: DistributedOptions, devDir: string): GroupPlan {
  const nodes = listGpuDeviceNodes(devDir);
  if (nodes.length === 0) {
    throw new NotAvailableError(`--backend gpus: no GPU device nodes were found (nothing matches ${devDir}/nvidia[0-9]+); use --backend processes or threads`);
  }
  const size = options.workersGiven ? options.workers : nodes.length;
  const shape: GroupShape = {
    size,
    backend: "gpus",
    memoryCapBytes: options.memoryBytes ?? defaultRankMemoryBytes(size),
    tfBackend: options.tfBackend ?? "webgpu",
    ...(options.link ? { link: options.link } : {}),
  };
  return {
    shape,
    start: (onEvent) => {
      const flags = unshareFlags();
      checkGpuIsolation(nodes, flags);
      const command = nodeRankCommand();
      return createProcessGroup(shape, onEvent, {
        launchFor: (rank) => gpuRankLaunch(command, nodes, rank % nodes.length, flags),
        gpus: Array.from({ length: size }, (_, rank) => ({ index: rank % nodes.length, node: nodes[rank % nodes.length]! })),
      });
    },
    ...(size > nodes.length ? { startNote: gpuSharingNote(size, nodes.length) } : {}),
  };
}

/** What a cell prints when its group puts more ranks than GPUs on this machine. */
export function gpuSharingNote(ranks: number, gpus: number): string {
  const most = Math.ceil(ranks / gpus);
  return (
    `distlab: ${ranks} ranks share ${gpus === 1 ? "this machine's 1 GPU" : `its ${gpus} GPUs`} (rank r on GPU r mod ${gpus}, up to ${most} a GPU); ` +
    "ranks on one GPU take turns on it, so their compute times are not one GPU's each\n"
  );
}
