/**
 * Time for the techniques that measure or emulate it (parameter server,
 * stragglers, the loss curves' `ms`): the monotonic clock and a wait that
 * yields to the event loop, so a rank's port and collectives keep running.
 */

/** Resolves after `ms` milliseconds: a slow rank's extra time, or emulated device time. */
export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/** Milliseconds from the monotonic clock. */
export function nowMs(): number {
  return performance.now();
}
