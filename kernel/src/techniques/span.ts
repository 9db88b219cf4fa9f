/**
 * Names a phase (forward+backward, sync, a bucket's allReduce, the optimizer)
 * on the live timeline through the rank's `dist.span(name, fn, { cat })`; with
 * a `dist` that has none (unit tests, a one-rank stand-in) it just runs fn.
 * The one place the techniques touch the timeline.
 */
export type PhaseCategory = "compute" | "comm" | "data" | "idle" | "other";

type SpanFn = <T>(name: string, fn: () => T, options?: { cat?: PhaseCategory; args?: Record<string, unknown> }) => T;

/** `args`: the span's args (a comm phase's `group`, which the timeline colours by mesh dimension). */
export function withSpan<T>(dist: unknown, name: string, fn: () => T, cat: PhaseCategory = "compute", args?: Record<string, unknown>): T {
  const span = (dist as { span?: unknown } | null | undefined)?.span;
  return typeof span === "function" ? ((span as SpanFn).call(dist, name, fn, args ? { cat, args } : { cat }) as T) : fn();
}

type StepFn = <T>(n: number, fn: () => T) => T;

/** Marks training step `n` through the rank's `dist.step` (the exports' ProfilerStep#n); else just runs fn. */
export function withStep<T>(dist: unknown, n: number, fn: () => T): T {
  const step = (dist as { step?: unknown } | null | undefined)?.step;
  return typeof step === "function" ? ((step as StepFn).call(dist, n, fn) as T) : fn();
}
