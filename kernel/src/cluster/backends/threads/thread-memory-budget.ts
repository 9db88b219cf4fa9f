/**
 * `--memory` for thread ranks. Threads share the kernel's process, and
 * Node 20 gives no way to read another thread's ArrayBuffer bytes from
 * outside it (a rank's own `process.memoryUsage().arrayBuffers` is its
 * thread's, but a rank busy in synchronous code never gets to read it). So:
 * - each rank thread's V8 heap is capped by `resourceLimits` (min of the
 *   heap cap and `--memory`): over it, that one thread ends with an
 *   out-of-heap error naming it;
 * - everything else (typed arrays, ArrayBuffers, wasm memory) is bounded
 *   for the group as a whole: while a cell runs, the kernel samples its own
 *   resident memory, and past `baseline + ranks x cap` it terminates every
 *   rank thread still running that cell. Which of them holds the memory
 *   cannot be measured, and the error says so.
 */
import { formatSize } from "../../../magics/memory-size";

/** How often the kernel samples its resident memory while a thread group's cell runs (milliseconds). */
export const MEMORY_SAMPLE_MS = 50;

export class ThreadMemoryBudget {
  /** The kernel's resident memory before the group's threads started (bytes). */
  private readonly baselineBytes = process.memoryUsage.rss();

  constructor(
    private readonly ranks: number,
    private readonly capBytes: number,
  ) {}

  get budgetBytes(): number {
    return this.baselineBytes + this.ranks * this.capBytes;
  }

  /** Calls `onExceeded` once with the reason if the process goes over budget; returns the stop switch. */
  watch(onExceeded: (reason: string) => void): () => void {
    const timer = setInterval(() => {
      const residentBytes = process.memoryUsage.rss();
      if (residentBytes <= this.budgetBytes) return;
      clearInterval(timer);
      onExceeded(
        `over --memory ${formatSize(this.capBytes)} per rank: the kernel's process reached ${formatSize(residentBytes)}, past the thread group's budget of ` +
          `${formatSize(this.budgetBytes)} (${this.ranks} x ${formatSize(this.capBytes)} on top of the kernel's own ${formatSize(this.baselineBytes)}). ` +
          "Thread ranks share one process, so which rank holds the memory cannot be measured: every rank still running was terminated " +
          "(--backend processes caps each rank on its own)",
      );
    }, MEMORY_SAMPLE_MS);
    timer.unref();
    return () => clearInterval(timer);
  }
}
