/**
 * Creates the TypeScript programs of the kernel's cell chains before their
 * first cells, while the kernel has nothing else to do. Creating a chain's
 * program (lib and @types files, TensorFlow.js's types for the ranks chain)
 * is seconds of CPU and most of what a chain's first cell costs: without
 * this, the first `%%distributed` cell waits for it on top of starting its
 * ranks.
 *
 * The work is synchronous and cannot be split, so it runs one chain at a
 * time, only while no request is being handled: a request that arrives
 * during one chain's warm-up waits for that chain at most, once. A chain
 * whose first cell came first is skipped.
 */
import type { CellCompiler } from "./cell-compiler";
import type { DeclarationChain } from "./declaration-chain";

/** How long the kernel is left alone after it starts, and between chains (milliseconds). */
export const WARM_UP_DELAY_MS = 300;
/** How often a busy kernel is looked at again (milliseconds). */
const BUSY_RETRY_MS = 200;

/** Environment variable that turns the warm-up off when set to "0". */
export const WARM_UP_ENV = "DISTLAB_WARM_UP";

/** Warms `chains` in order whenever `isIdle()`; returns the switch that stops what is left. */
export function warmUpWhenIdle(compiler: CellCompiler, chains: readonly DeclarationChain[], isIdle: () => boolean, delayMs = WARM_UP_DELAY_MS): () => void {
  const left = [...chains];
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number): void => {
    timer = setTimeout(step, ms);
    // A kernel with nothing else to do may exit without waiting for this.
    timer.unref();
  };
  const step = (): void => {
    timer = undefined;
    if (!isIdle()) return schedule(BUSY_RETRY_MS);
    const chain = left.shift();
    if (!chain) return;
    if (!compiler.hasProgram(chain)) compiler.warmUp(chain);
    if (left.length > 0) schedule(delayMs);
  };
  schedule(delayMs);
  return () => {
    left.length = 0;
    if (timer) clearTimeout(timer);
  };
}
