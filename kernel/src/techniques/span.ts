/**
 * Names a phase (forward+backward, sync, a bucket's allReduce, the optimizer)
 * on the live timeline through the rank's `dist.span(name, fn, { cat })`; with
 * a `dist` that has none (unit tests, a one-rank stand-in) it just runs fn.
 * The one place the techniques touch the timeline.
 */
export type PhaseCategory = "compute" | "comm" | "data" | "idle" | "other";

type SpanFn = <T>(name: string, fn: () => T, options?: { cat?: PhaseCategory }) => T;

export function withSpan<T>(dist: unknown, name: string, fn: () => T, cat: PhaseCategory = "compute"): T {
  const span = (dist as { span?: unknown } | null | undefined)?.span;
  return typeof span === "function" ? ((span as SpanFn).call(dist, name, fn, { cat }) as T) : fn();
}
