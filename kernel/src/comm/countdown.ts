// Waiting for several pieces of work with callbacks instead of promises. A
// 4 KiB collective on socket ranks is mostly bookkeeping, and every promise
// it makes costs twice over once a cell's code runs under an
// AsyncLocalStorage (rank-side/cell-epochs.ts): Node then runs its promise
// hooks for each. So the transport's hot path reports each frame sent or
// received through these callbacks, and a call makes one promise, not one per
// frame and step (tcp-transport.ts).

/** How one piece of work reports: each callback counts once, and only the first of the two does. */
export interface Part {
  done(): void;
  fail(error: unknown): void;
}

/** A part whose first report, done or failed, is the only one passed on. */
export function reportOnce(onDone: () => void, onFail: (error: unknown) => void): Part {
  let reported = false;
  return {
    done: () => {
      if (reported) return;
      reported = true;
      onDone();
    },
    fail: (error) => {
      if (reported) return;
      reported = true;
      onFail(error);
    },
  };
}

/**
 * Counts pieces of work down to zero. Exactly one of `onDone` (every part is
 * done) and `onFail` (the first failure; later reports are ignored) runs, once.
 */
export class Countdown {
  private left = 0;
  private sealed = false;
  private finished = false;

  constructor(
    private readonly onDone: () => void,
    private readonly onFail: (error: unknown) => void,
  ) {}

  /** A new piece of work to wait for; call before seal(). */
  part(): Part {
    this.left++;
    return reportOnce(
      () => {
        this.left--;
        this.check();
      },
      (error) => this.end(error),
    );
  }

  /** No more parts will be added: finishes now if they are all done (or there were none). */
  seal(): void {
    this.sealed = true;
    this.check();
  }

  /** Finishes now with `error`, whatever the parts are doing (a timeout, a stop). */
  end(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.onFail(error);
  }

  get ended(): boolean {
    return this.finished;
  }

  private check(): void {
    if (this.sealed && this.left === 0 && !this.finished) {
      this.finished = true;
      this.onDone();
    }
  }
}
