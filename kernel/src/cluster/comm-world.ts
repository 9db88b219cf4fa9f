/**
 * The thread group's communication world: shared memory created on the
 * kernel's thread, joined by each rank on its own thread, cancelled by the
 * kernel when a rank fails or the user interrupts. A thin naming layer over
 * kernel/src/comm so the cluster code reads in its own terms.
 */
import { attachShmCommunicator, cancelShmWorld, createShmWorld, type Communicator, type LinkModel, type ShmWorldInit, type SpanHook } from "../comm";
import { MAX_SHM_RANKS } from "../comm/shm-layout";

/** Most ranks the threads backend runs: the shm transport keeps a channel per ordered pair of ranks. */
export const MAX_THREAD_RANKS = MAX_SHM_RANKS;

export function createCommWorld(size: number): ShmWorldInit {
  return createShmWorld(size);
}

/** `onSpan` hears of every call the rank finishes (the timeline's comm spans). */
export function joinCommWorld(world: unknown, rank: number, options: { timeoutMs: number; link?: LinkModel; onSpan?: SpanHook }): Communicator {
  return attachShmCommunicator(world as ShmWorldInit, rank, {
    timeoutMs: options.timeoutMs,
    ...(options.link ? { link: options.link } : {}),
    ...(options.onSpan ? { onSpan: options.onSpan } : {}),
  });
}

export function cancelCommWorld(world: unknown, reason: string): void {
  cancelShmWorld(world as ShmWorldInit, reason);
}
