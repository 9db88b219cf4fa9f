/**
 * Runs on a rank (its worker thread or its process): makes errors that no
 * task is waiting for (a timer that throws after its cell ended, a promise
 * rejected with nobody listening) reports instead of the end of the rank.
 *
 * Node ends a thread or process on either by default, and libraries make it
 * worse: tfjs-backend-wasm's Emscripten glue adds
 * `process.on("unhandledRejection", r => { throw r })` and an
 * `uncaughtException` listener that rethrows (exit code 7). So the rank
 * owns both events:
 * - uncaught exceptions go to `process.setUncaughtExceptionCaptureCallback`,
 *   which Node calls instead of emitting `uncaughtException` at all;
 * - the rank's own `unhandledRejection` listener reports each rejection,
 *   and listeners others add for these two events (before or after this
 *   guard) are not attached: a library cannot turn a report into a crash.
 * Each of `worker_threads`' threads has its own `process` events, so a thread
 * rank guards its own thread only.
 */

/** Where a background error came from, as the user is told. */
export type BackgroundErrorOrigin = "unhandled rejection" | "uncaught exception";

const OWNED_EVENTS = new Set<string | symbol>(["unhandledRejection", "uncaughtException"]);

let installed = false;

/** Installs the guard once per thread or process; `report` must not throw (it is shielded anyway). */
export function guardRankErrors(report: (error: unknown, origin: BackgroundErrorOrigin) => void): void {
  if (installed) return;
  installed = true;
  const shielded = (error: unknown, origin: BackgroundErrorOrigin): void => {
    try {
      report(error, origin);
    } catch {
      // Nothing is left to tell it to: dropping it keeps the rank alive.
    }
  };
  for (const event of OWNED_EVENTS) process.removeAllListeners(event as "unhandledRejection");
  process.setUncaughtExceptionCaptureCallback((error) => shielded(error, "uncaught exception"));
  process.on("unhandledRejection", (reason) => shielded(reason, "unhandled rejection"));
  refuseListeners();
}

/** From now on, adding a listener for an owned event is a no-op that returns `process`, as `on` does. */
function refuseListeners(): void {
  const target = process as unknown as Record<string, (event: string | symbol, listener: (...args: unknown[]) => void) => unknown>;
  for (const method of ["on", "addListener", "prependListener", "once", "prependOnceListener"]) {
    const original = target[method]!;
    target[method] = function (this: unknown, event, listener) {
      if (OWNED_EVENTS.has(event)) return process;
      return original.call(this, event, listener);
    };
  }
}
