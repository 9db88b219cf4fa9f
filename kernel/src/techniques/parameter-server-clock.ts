/**
 * Stale-synchronous-parallel (SSP) bookkeeping of a parameter server
 * (Ho et al., NeurIPS 2013). Each worker's clock is the number of gradients
 * it has pushed. A worker that wants to start step c may do so only while
 * c - min(clocks of unfinished workers) <= s: with s = 0 every worker waits
 * for the slowest (bulk synchronous), with s = Infinity nobody waits
 * (fully asynchronous). The staleness recorded for a release is exactly that
 * difference, so "observed staleness <= s" is the invariant this class keeps.
 */
import { checkInteger } from "./validate";

export interface Release {
  worker: number;
  /** clock of the released worker minus the slowest unfinished worker's clock, in steps */
  staleness: number;
}

export class StalenessClock {
  /** gradients pushed by each worker */
  readonly clocks: number[];
  private readonly finished: boolean[];
  private readonly waiting = new Set<number>();
  /** how many releases saw each staleness value: histogram[k] = count of releases with staleness k */
  readonly histogram: number[] = [];
  maxObserved = 0;

  constructor(workers: number, readonly staleness: number) {
    checkInteger("StalenessClock.workers", workers, 1);
    validateStaleness("StalenessClock.staleness", staleness);
    this.clocks = new Array<number>(workers).fill(0);
    this.finished = new Array<boolean>(workers).fill(false);
    for (let w = 0; w < workers; w++) this.waiting.add(w);
  }

  /** Worker w pushed a gradient; unless `last`, it now waits to be released for its next step. */
  push(worker: number, last: boolean): void {
    this.clocks[worker]! += 1;
    if (last) this.finished[worker] = true;
    else this.waiting.add(worker);
  }

  /** The slowest unfinished worker's clock; Infinity when all have finished. */
  minActiveClock(): number {
    let min = Infinity;
    for (let w = 0; w < this.clocks.length; w++) if (!this.finished[w]) min = Math.min(min, this.clocks[w]!);
    return min;
  }

  /** Releases every waiting worker the bound allows, recording each one's staleness. */
  release(): Release[] {
    const slowest = this.minActiveClock();
    const released: Release[] = [];
    for (const worker of [...this.waiting].sort((a, b) => a - b)) {
      const staleness = this.clocks[worker]! - slowest;
      if (staleness > this.staleness) continue;
      this.waiting.delete(worker);
      this.maxObserved = Math.max(this.maxObserved, staleness);
      this.histogram[staleness] = (this.histogram[staleness] ?? 0) + 1;
      released.push({ worker, staleness });
    }
    return released;
  }

  get allFinished(): boolean {
    return this.finished.every(Boolean);
  }

  /** Workers still blocked by the bound. */
  get blocked(): number[] {
    return [...this.waiting].sort((a, b) => a - b);
  }
}

/** s must be a non-negative integer, or Infinity for fully asynchronous training. */
export function validateStaleness(name: string, staleness: unknown): void {
  if (staleness === Infinity) return;
  if (typeof staleness !== "number" || !Number.isInteger(staleness) || staleness < 0) {
    throw new RangeError(`${name} must be an integer >= 0 (0 is synchronous) or Infinity (asynchronous), got ${String(staleness)}`);
  }
}
