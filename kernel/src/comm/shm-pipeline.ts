// The schedule every direct (same-host, shared-memory) collective runs on.
// A call is cut into chunks of at most slotBytes; chunk g of the world
// (numbered across calls) lives in slot g % SLOTS. Each chunk goes through
// three phases on every rank, each a plain copy or reduction over shared
// memory, ordered by per-rank counters instead of rank-wide barriers:
//
//   copyIn(g)   this rank's part of chunk g into its staging slot    -> posted  = g + 1
//   process(g)  once every rank posted g: reduce / copy what it needs -> reduced = g + 1
//   copyOut(g)  once every rank reduced g (if the plan says so)       -> consumed = g + 1
//
// copyIn(g) may reuse slot g % SLOTS once every rank has consumed g - SLOTS.
// The loop runs copyIn(i), process(i - 1), copyOut(i - 2) in step i, so the
// copy-in of one chunk overlaps a peer's reduction of the one before; every
// wait is on a strictly earlier step of the other ranks, so it cannot deadlock.
import { descriptorsAgree } from "./descriptor";
import { CONSUMED, POSTED, REDUCED, SLOTS } from "./shm-layout";
import { STATE_MISMATCH, type ShmTransport } from "./shm-transport";
import type { CallContext } from "./transport";

/** What one collective does in each phase of its chunk i (0-based within the call) in slot `slot`. */
export interface ChunkPlan {
  chunks: number;
  copyIn(i: number, slot: number): void;
  process(i: number, slot: number): void;
  copyOut(i: number, slot: number): void;
  /** copyOut reads what other ranks wrote in process (the shared result slot) */
  outNeedsReduced: boolean;
}

export class ShmPipeline {
  /** chunks this rank has completed in its world so far (the same on every rank between calls) */
  private done = 0;
  private readonly ctl: Int32Array;
  private readonly n: number;

  constructor(private readonly t: ShmTransport) {
    this.ctl = t.ctl;
    this.n = t.size;
  }

  run(call: CallContext, plan: ChunkPlan): void {
    const base = this.done;
    const G = plan.chunks;
    for (let step = 0; step < G + 2; step++) {
      if (step < G) {
        const g = base + step;
        if (g >= SLOTS) this.waitAll(call, CONSUMED, g - SLOTS + 1);
        plan.copyIn(step, g % SLOTS);
        this.publish(POSTED, g + 1);
      }
      const p = step - 1;
      if (p >= 0 && p < G) {
        const g = base + p;
        this.waitAll(call, POSTED, g + 1);
        if (p === 0) this.checkDescriptors(call);
        plan.process(p, g % SLOTS);
        this.publish(REDUCED, g + 1);
      }
      const o = step - 2;
      if (o >= 0) {
        const g = base + o;
        if (plan.outNeedsReduced) this.waitAll(call, REDUCED, g + 1);
        plan.copyOut(o, g % SLOTS);
        this.publish(CONSUMED, g + 1);
      }
    }
    this.done = base + G;
  }

  /** Returns once every rank has consumed every chunk this rank has run so far. */
  waitForAll(call: CallContext): void {
    this.waitAll(call, CONSUMED, this.done);
  }

  /** Sets this rank's control word `field` (which only grows) and rings every peer. */
  publish(field: number, value: number): void {
    const t = this.t;
    Atomics.store(this.ctl, t.layout.rankWord(t.rank, field), value);
    for (let r = 0; r < this.n; r++) if (r !== t.rank) t.ring(r);
  }

  /** Returns once every rank's `field` counter is at least `target`; spins briefly, then sleeps on the doorbell. */
  waitAll(call: CallContext, field: number, target: number): void {
    const { ctl, n, t } = this;
    let next = 0;
    const ready = () => {
      for (; next < n; next++) if (Atomics.load(ctl, t.layout.rankWord(next, field)) < target) return false;
      return true;
    };
    if (ready()) return;
    t.blockUntil(call, () => false, ready, () => {
      const lagging: number[] = [];
      for (let r = 0; r < n; r++) if (Atomics.load(ctl, t.layout.rankWord(r, field)) < target) lagging.push(r);
      return lagging;
    });
  }

  /**
   * Every rank has posted this call's first chunk, so each has entered this
   * call (or already left it, having passed the same check). A peer in the
   * same call with other arguments stops the world.
   */
  private checkDescriptors(call: CallContext): void {
    const mine = call.desc;
    for (let r = 0; r < this.n; r++) {
      if (r === this.t.rank) continue;
      const theirs = this.t.peerDescriptor(r);
      if (theirs && theirs.group === mine.group && theirs.call === mine.call && !descriptorsAgree(mine, theirs)) {
        this.t.abort(STATE_MISMATCH, this.t.mismatchReport(call, r, theirs));
        this.t.checkState(call);
      }
    }
  }
}
