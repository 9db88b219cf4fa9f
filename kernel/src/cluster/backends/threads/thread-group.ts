/**
 * `--backend threads`: N ranks on worker threads of the kernel process (one
 * piscina pool of one thread per rank), joined by a shared-memory world.
 * The cell lifecycle is the shared one of rank-group.ts.
 */
import { hostname } from "node:os";
import { createShmKernelWorld } from "../../comm-world";
import type { GroupShape, RankEvent } from "../../rank-messages";
import { RankGroup } from "../../kernel-side/rank-group";
import { ThreadMemoryBudget } from "./thread-memory-budget";
import { ThreadRank } from "./thread-rank-handle";

export function createThreadGroup(shape: GroupShape, onEvent: (rank: number, event: RankEvent) => void): RankGroup {
  const host = hostname();
  // Measured before the rank threads start: they count against the ranks' budget.
  const memory = new ThreadMemoryBudget(shape.size, shape.memoryCapBytes);
  const ranks = Array.from(
    { length: shape.size },
    (_, rank) => new ThreadRank({ rank, size: shape.size, host, memoryCapBytes: shape.memoryCapBytes, ...(shape.tfBackend ? { tfBackend: shape.tfBackend } : {}) }, onEvent),
  );
  return new RankGroup(shape, ranks, async (size) => createShmKernelWorld(size), memory);
}
