/**
 * Creates the TypeScript programs of the kernel's cell chains before their
 * first cells, while the kernel has nothing else to do. Creating a chain's
 * program (lib and @types files, TensorFlow.js's types for the ranks chain)
 * is seconds of CPU and most of what a chain's first cell costs: without
 * this, the first `%%distributed` cell waits for it on top of starting its
 * ranks.
 *
 * The work is synchronous and cannot be split, so it runs one chain at a
 * time, only once no request has been handled for `quietMs`: a frontend
 * that sends its first cell right after kernel_info finds the kernel free,
 * and a request that arrives during one chain's warm-up waits for that
 * chain at most, once. A chain whose first cell came first is skipped.
 */
import type { CellCompiler } from "./cell-compiler";
import type { DeclarationChain } from "./declaration-chain";

/** How long the kernel must have been left alone before a chain's warm-up (milliseconds). */
export const WARM_UP_QUIET_MS = 1000;
/** How often the kernel is looked at again while it is not yet quiet (milliseconds). */
const RETRY_MS = 200;

/** Environment variable that turns the warm-up off when set to "0". */
export const WARM_UP_ENV = "DISTLAB_WARM_UP";

/**
 * Warms `chains` in order, each once `idleMs()` (milliseconds since the kernel last handled a
 * request, 0 while it handles one) reaches `quietMs`; returns the switch that stops what is left.
 */
export function warmUpWhenIdle(compiler: CellCompiler, chains: readonly DeclarationChain[], idleMs: () => number, quietMs = WARM_UP_QUIET_MS): () => void {
  const left = [...chains];
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number): void => {
    timer = setTimeout(step, ms);
    // A kernel with nothing else to do may exit without waiting for this.
    timer.unref();
  };
  const step = (): void => {
    timer = undefined;
    const idle = idleMs();
    if (idle < quietMs) return schedule(Math.max(RETRY_MS, quietMs - idle));
    const chain = left.shift();
    if (!chain) return;
    if (!compiler.hasProgram(chain)) compiler.warmUp(chain);
    if (left.length > 0) schedule(RETRY_MS);
  };
  schedule(quietMs);
  return () => {
    left.length = 0;
    if (timer) clearTimeout(timer);
  };
}
