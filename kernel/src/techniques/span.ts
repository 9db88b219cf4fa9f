/**
 * Names a phase (forward, backward, sync) on the live timeline when the rank's
 * `dist` offers `dist.span(name, fn)`; otherwise just runs fn. The one place
 * the techniques touch the timeline.
 */
type SpanFn = <T>(name: string, fn: () => T) => T;

export function withSpan<T>(dist: unknown, name: string, fn: () => T): T {
  const span = (dist as { span?: unknown } | null | undefined)?.span;
  return typeof span === "function" ? ((span as SpanFn).call(dist, name, fn) as T) : fn();
}
