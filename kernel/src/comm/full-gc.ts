// A full garbage collection on demand, for the result pool (result-pool.ts):
// the only way a rank learns, inside one job, that results it handed out
// were dropped. V8 runs FinalizationRegistry callbacks only after a
// mark-compact collection (a young-generation scavenge does not process
// them), and pooled results are small JS objects that put no pressure on
// the heap, so without a forced collection a tight loop of calls never gets
// a block back.
import * as v8 from "node:v8";
import * as vm from "node:vm";

let collect: (() => void) | null | undefined;

/** A function that runs a full, synchronous garbage collection of this thread's heap, or undefined where the host offers none. */
export function fullGc(): (() => void) | undefined {
  if (collect === undefined) {
    collect = (globalThis as { gc?: () => void }).gc ?? null;
    if (!collect) {
      try {
        // The flag makes contexts created from now on carry `gc`; this thread's own global does not get it.
        v8.setFlagsFromString("--expose-gc");
        collect = vm.runInNewContext("gc") as () => void;
      } catch {
        collect = null;
      }
    }
  }
  return collect ?? undefined;
}

/**
 * A young-generation collection (a scavenge: well under a millisecond in a rank), or undefined where the
 * host offers no `gc`. It finds dropped objects that are young, and processes their weak handles (the
 * native finalizers of lent-blocks.ts), not FinalizationRegistry callbacks.
 */
export function scavenge(): (() => void) | undefined {
  const gc = fullGc() as ((options?: { type: "minor" | "major" }) => void) | undefined;
  return gc && (() => gc({ type: "minor" }));
}
