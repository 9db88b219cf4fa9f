/**
 * The statistics and reporting rules every bench script follows, in one place:
 *   - each figure is the median of at least MIN_REPS repetitions measured in one invocation,
 *     printed with the minimum and maximum of those repetitions;
 *   - a ratio between two systems is the ratio of their medians, measured in the same run;
 *   - both sides of a comparison get the same warm-up and the same timed-call counts.
 * Python baselines print their raw repetitions as JSON; the summary is always made here.
 * Loaded from the .mjs drivers with require("tsx/cjs") and require("./stats.ts").
 */
import { cpus, loadavg } from "node:os";

/** Fewest repetitions a reported figure may rest on. */
export const MIN_REPS = 5;

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** how many repetitions the figure rests on */
  reps: number;
}

/** Median, min and max of one figure's repetitions; throws when there are fewer than MIN_REPS of them. */
export function summarize(samples: readonly number[], what = "figure"): Summary {
  if (samples.length < MIN_REPS) throw new RangeError(`${what}: ${samples.length} repetitions, at least ${MIN_REPS} needed for a median`);
  for (const s of samples) if (!Number.isFinite(s)) throw new RangeError(`${what}: repetition ${s} is not a finite number`);
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, reps: sorted.length };
}

/** The value below which `fraction` of the samples lie (nearest rank); for tails of per-call latencies, not for headline figures. */
export function percentile(samples: readonly number[], fraction: number): number {
  if (!samples.length) throw new RangeError("percentile of no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

/** f applied to a summary: for a monotone f (f(x) = bytes / x turns a time into a bandwidth) min and max swap when f decreases. */
export function mapSummary(s: Summary, f: (x: number) => number): Summary {
  const [a, b] = [f(s.min), f(s.max)];
  return { median: f(s.median), min: Math.min(a, b), max: Math.max(a, b), reps: s.reps };
}

/** "12.3 [11.9, 14.0]": median [min, max]. */
export function formatSummary(s: Summary, digits = 1): string {
  return `${s.median.toFixed(digits)} [${s.min.toFixed(digits)}, ${s.max.toFixed(digits)}]`;
}

/** numerator's median / denominator's median. */
export function ratioOfMedians(numerator: Summary, denominator: Summary): number {
  return numerator.median / denominator.median;
}

/** Times `reps` blocks of `calls` calls after `warmup` untimed calls; returns milliseconds per call, one per block. */
export function timeBlocks(run: () => void, plan: { warmup: number; calls: number; reps: number }): number[] {
  for (let i = 0; i < plan.warmup; i++) run();
  const blocks: number[] = [];
  for (let r = 0; r < plan.reps; r++) {
    const started = performance.now();
    for (let i = 0; i < plan.calls; i++) run();
    blocks.push((performance.now() - started) / plan.calls);
  }
  return blocks;
}

/**
 * The value of `--name N` in argv as an integer >= min, or fallback when absent. A bad value throws
 * naming the flag. `--reps` is checked against MIN_REPS by repsOption.
 */
export function intOption(argv: readonly string[], name: string, fallback: number, min = 1): number {
  const at = argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const text = argv[at + 1];
  const value = Number(text);
  if (text === undefined || !Number.isInteger(value) || value < min) throw new RangeError(`--${name}: expected an integer >= ${min}, got ${text === undefined ? "nothing" : JSON.stringify(text)}`);
  return value;
}

/** --reps N: repetitions per figure, at least MIN_REPS. */
export function repsOption(argv: readonly string[], fallback = MIN_REPS): number {
  return intOption(argv, "reps", fallback, MIN_REPS);
}

/** The values of `--name a,b,c`, each checked against `known`; fallback when the flag is absent. */
export function listOption(argv: readonly string[], name: string, fallback: readonly string[], known?: readonly string[]): string[] {
  const at = argv.indexOf(`--${name}`);
  if (at < 0) return [...fallback];
  const text = argv[at + 1];
  if (!text || text.startsWith("--")) throw new RangeError(`--${name}: expected a comma-separated list${known ? ` of ${known.join(", ")}` : ""}`);
  const values = text.split(",");
  if (known) for (const v of values) if (!known.includes(v)) throw new RangeError(`--${name}: unknown value ${JSON.stringify(v)} (known: ${known.join(", ")})`);
  return values;
}

/** One line naming the machine and the moment: the page quotes it with each result. */
export function machineLine(): string {
  const load = loadavg().map((l) => l.toFixed(2)).join(" ");
  return `${new Date().toISOString()}  ${cpus().length} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"})  node ${process.version}  load average ${load}`;
}

/** Left-aligned columns, two spaces apart. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n");
}
