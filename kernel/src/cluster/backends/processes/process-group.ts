/**
 * `--backend processes` and `--backend gpus`: N ranks in child Node
 * processes of this machine, joined by a TCP world (Unix sockets between
 * ranks of one host). The cell lifecycle is the shared one of
 * rank-group.ts; what differs per rank is how its process starts
 * (`launchFor`) and, for gpus, which GPU it was given.
 */
import { hostname } from "node:os";
import { createTcpKernelWorld } from "../../comm-world";
import type { GpuAssignment, GroupShape, RankEvent } from "../../rank-messages";
import { nodeRankLaunch, ProcessRank, type RankLaunch } from "./process-rank-handle";
import { RankGroup } from "../../kernel-side/rank-group";

export interface ProcessGroupOptions {
  /** How rank `rank`'s process starts; default: node on the rank entry. */
  launchFor?: (rank: number) => RankLaunch;
  /** gpus: the GPU of each rank, indexed by rank. */
  gpus?: readonly GpuAssignment[];
}

export function createProcessGroup(shape: GroupShape, onEvent: (rank: number, event: RankEvent) => void, options: ProcessGroupOptions = {}): RankGroup {
  const host = hostname();
  const launchFor = options.launchFor ?? (() => nodeRankLaunch());
  const ranks = Array.from({ length: shape.size }, (_, rank) => {
    const gpu = options.gpus?.[rank];
    const info = { rank, size: shape.size, host, memoryCapBytes: shape.memoryCapBytes, ...(shape.tfBackend ? { tfBackend: shape.tfBackend } : {}), ...(gpu ? { gpu } : {}) };
    return new ProcessRank(info, onEvent, launchFor(rank));
  });
  // Each rank process gets a communication thread (DDP's buckets move on it while backward computes).
  return new RankGroup(shape, ranks, (size) => createTcpKernelWorld(size, undefined, { commThread: true }));
}
