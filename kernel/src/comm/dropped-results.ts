/**
 * Finding pooled results the caller dropped with a scavenge instead of a full
 * collection (kernel/native/dropped-results.cc).
 *
 * The result pool (result-pool.ts) hands out each result as a view over a
 * second JS object of a block's SharedArrayBuffer and must learn when that
 * object is collected. A FinalizationRegistry tells only after a full
 * mark-compact collection, which costs a rank 5-35 ms: more than a 64 MiB
 * allReduce between two rank threads. A native finalizer on the same object
 * runs after a young-generation scavenge too (well under a millisecond), so
 * the pool scavenges when it has no idle block and finds the dropped ones:
 * the addon sets the block's flag word, and settle() hands the block back.
 * A result that outlived two scavenges (kept across calls) is in the old
 * generation, and a full collection still finds it.
 *
 * Lifetime: the watcher holds each watched block until its flag is set (the
 * pool holds it too). The flag words are one SharedArrayBuffer per thread,
 * never let go, since a finalizer may run after the pool's world has ended.
 *
 * Environment: DISTLAB_DROPPED_RESULTS=registry keeps the FinalizationRegistry
 * path (for comparison).
 */
import * as path from "node:path";
import { scavenge } from "./full-gc";
import { addonSetting, loadAddon } from "../native-addons";

interface DroppedResultsAddon {
  watch(object: object, flags: Int32Array, index: number): void;
}

/** Where `npm run setup` builds the addon, from src/comm or dist/comm alike. */
export const DROPPED_RESULTS_ADDON = path.join(__dirname, "..", "..", "native", "build", "dropped-results.node");

/** Watched results outstanding at once on a thread (beyond it, the pool uses its FinalizationRegistry). */
const FLAG_SLOTS = 4096;

export class DroppedResults {
  private readonly flags = new Int32Array(new SharedArrayBuffer(4 * FLAG_SLOTS));
  private readonly freeSlots = Array.from({ length: FLAG_SLOTS }, (_, i) => FLAG_SLOTS - 1 - i);
  /** flag slot -> the block behind the watched object, and who gets it back */
  private readonly watched = new Map<number, { block: SharedArrayBuffer; onDropped: (block: SharedArrayBuffer) => void }>();

  constructor(
    private readonly addon: DroppedResultsAddon,
    /** a young-generation collection (full-gc.ts); the finalizers it makes due run in the next task */
    readonly scavenge: () => void,
  ) {}

  /** Watches `handed` (a JS object of `block`): `onDropped(block)` runs in a settle() after it was collected. False when every slot is taken. */
  watch(handed: SharedArrayBuffer, block: SharedArrayBuffer, onDropped: (block: SharedArrayBuffer) => void): boolean {
    const slot = this.freeSlots.pop();
    if (slot === undefined) return false;
    Atomics.store(this.flags, slot, 0);
    this.addon.watch(handed, this.flags, slot);
    this.watched.set(slot, { block, onDropped });
    return true;
  }

  /** Hands back every block whose watched object was collected since the last settle. */
  settle(): void {
    for (const [slot, entry] of this.watched) {
      if (Atomics.load(this.flags, slot) !== 1) continue;
      this.watched.delete(slot);
      this.freeSlots.push(slot);
      entry.onDropped(entry.block);
    }
  }
}

let perThread: DroppedResults | null | undefined;

/** This thread's watcher, or undefined where the addon is not built or cannot load, the host has no `gc`, or DISTLAB_DROPPED_RESULTS=registry. */
export function droppedResults(env: NodeJS.ProcessEnv = process.env): DroppedResults | undefined {
  if (perThread === undefined) {
    const setting = addonSetting(env, "DISTLAB_DROPPED_RESULTS", ["scavenge", "registry"] as const);
    const young = scavenge();
    const addon = setting !== "registry" && young ? loadAddon<DroppedResultsAddon>(DROPPED_RESULTS_ADDON) : undefined;
    perThread = addon && young ? new DroppedResults(addon, young) : null;
  }
  return perThread ?? undefined;
}
