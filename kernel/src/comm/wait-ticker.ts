// One timer for all of a transport's waits. Each wait must notice a stall
// (to probe the members) and a timeout, but a 4 KiB collective is over long
// before either: a timer of its own per wait cost about 6 us of CPU a call on
// a rank (creating, ordering and clearing Node timers, each an async
// resource that a cell's AsyncLocalStorage hooks). So waits register a check
// here, run every period while any wait is out; the interval stops after a
// period with none.

export class WaitTicker {
  private readonly checks = new Set<(now: number) => boolean>();
  private timer?: NodeJS.Timeout;

  /** `periodMs`: how often checks run; a stall or a timeout is seen up to this late. */
  constructor(private readonly periodMs: number) {}

  /** Runs `check(now)` (performance.now() ms) every period until it returns true or the returned function is called. */
  watch(check: (now: number) => boolean): () => void {
    this.checks.add(check);
    this.timer ??= setInterval(() => this.tick(), this.periodMs);
    return () => this.checks.delete(check);
  }

  /** Stops the timer for good (the transport closed). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.checks.clear();
  }

  private tick(): void {
    if (this.checks.size === 0) return this.stop();
    const now = performance.now();
    for (const check of this.checks) if (check(now)) this.checks.delete(check);
  }
}
