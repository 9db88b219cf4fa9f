// When a socket rank waits for the agreement frames of its one-way
// collectives (agreement.ts says which frames a call needs).
//
// A broadcast's root receives no data, so its check is the agreement frame of
// the member before it in the ring, sent when that member enters the call:
// after it has received the previous call's data. Awaited inside the call,
// that frame holds the root to one call ahead of its slowest leaf, and a loop
// of small broadcasts pays a round trip per call (4 KiB on 4 process ranks:
// 2.6x the latency without checks, docs/benchmarks.md). So a call's frames are
// awaited late: by the call made AGREEMENT_WINDOW calls later, or when the
// rank settles (the end of each cell, and every barrier). The frames are
// still checked the moment they arrive, and a disagreement then stops the
// world at once (tcp-transport.ts), so the next call on every rank fails with
// the one error naming each member's call; only the call that disagreed may
// already have returned on a rank whose check was its agreement frame.
import { reportOnce, type Part } from "./countdown";
import type { CallContext } from "./transport";

/**
 * Calls whose agreement frames a rank may leave behind it. Socket buffers already bound how far a
 * root runs ahead of its leaves (about 50 calls of 4 KiB on loopback); the window keeps the list
 * short and a late report near the call it names.
 */
export const AGREEMENT_WINDOW = 32;

/**
 * The agreement frames of one call: each frame sent or received reports through a part(), and
 * whoever awaits the call's frames asks whenDone(). Callbacks, not promises: this runs on every
 * one-way collective (countdown.ts says why that matters).
 */
export class PendingAgreement {
  private left = 0;
  private failure?: { error: unknown };
  private waiters?: Part[];

  constructor(
    readonly call: CallContext,
    /** the members the frames go to or come from (world ranks), for a timeout's message */
    readonly peers: number[],
  ) {}

  /** One frame of the call, to report through the part returned. */
  part(): Part {
    this.left++;
    return reportOnce(
      () => {
        if (--this.left === 0 && !this.failure) this.wake();
      },
      (error) => {
        this.failure ??= { error };
        this.wake();
      },
    );
  }

  /** Every frame checked and none failed. */
  get passed(): boolean {
    return this.left === 0 && !this.failure;
  }

  /** Reports to `waiter` once every frame is done, or the first failure. */
  whenDone(waiter: Part): void {
    if (this.failure) waiter.fail(this.failure.error);
    else if (this.left === 0) waiter.done();
    else (this.waiters ??= []).push(waiter);
  }

  private wake(): void {
    const waiters = this.waiters ?? [];
    this.waiters = undefined;
    for (const waiter of waiters) this.whenDone(waiter);
  }
}

/** The calls whose agreement frames this rank has not awaited yet, oldest first. */
export class AgreementWindow {
  private pending: PendingAgreement[] = [];

  constructor(private readonly window = AGREEMENT_WINDOW) {}

  /** Adds a call's frames. A failure is reported to whoever takes the entry; until then it is held. */
  add(agreement: PendingAgreement): void {
    // the ones already checked need no awaiting: keep the list to the calls still in flight
    this.pending = this.pending.filter((p) => !p.passed);
    this.pending.push(agreement);
  }

  /** The entries that fell out of the window, for the call being made now to await. */
  due(): PendingAgreement[] {
    const over = this.pending.length - this.window;
    return over > 0 ? this.pending.splice(0, over) : [];
  }

  /** Every entry still held, for the rank to await as it settles. */
  drain(): PendingAgreement[] {
    return this.pending.splice(0);
  }

  /**
   * Forgets the entries of cells before `epoch`: the transport ended their waits when the new
   * cell's first call came (a cell that failed before it settled leaves its entries behind).
   */
  dropBefore(epoch: number): void {
    this.pending = this.pending.filter((p) => p.call.desc.epoch >= epoch);
  }
}
