/**
 * `%dist timeline [--export FILE] [--into NAME]`: shows the last distributed
 * cell's timeline again, writes it as a Chrome trace (one combined file that
 * Perfetto opens, and one file per rank beside it for Holistic Trace
 * Analysis), or hands its payload (spans and the summary the kernel computed
 * from them) to the notebook as a variable, so a notebook can assert on it.
 */
import { resolve } from "node:path";
import { UsageError } from "../../errors";
import type { ExecutionIO } from "../../protocol/backend";
import { exportChromeTrace, timelineBundle, type ExportedTrace, type HtaFigures, type TimelinePayload } from "../../trace";

/** The declared type of `%dist timeline --into NAME` (the payload, docs/timeline.md). */
export const TIMELINE_PAYLOAD_TYPE =
  "{ version: 1; live: boolean; ranks: Array<{ rank: number; host: string; device: string }>; " +
  "spans: Array<{ rank: number; name: string; cat: \"compute\" | \"comm\" | \"data\" | \"idle\" | \"other\"; ts: number; dur: number; args?: Record<string, any> }>; " +
  "summary: { durationUs: number; spanCount: number; overlapPct: number; bubbleFraction: number | null; stragglerRank: number | null; collectives: number; " +
  "ranks: Array<{ rank: number; computePct: number; commPct: number; dataPct: number; idlePct: number; otherPct: number; overlapPct: number; waitedForUs: number }> } }";

/** A copy of the last payload for the notebook's variable `name`. */
export function timelineInto(last: TimelinePayload | undefined, name: string): TimelinePayload {
  if (last === undefined) throw new UsageError(`%dist timeline --into ${name}: ${NONE_YET}`, "--into");
  return structuredClone(last);
}

const NONE_YET = "no timeline recorded yet: run a %%distributed cell (without --no-timeline) first";

export async function timelineCommand(last: TimelinePayload | undefined, exportFile: string | undefined, io: ExecutionIO): Promise<void> {
  if (exportFile === undefined) {
    if (last === undefined) io.stream("stdout", `${NONE_YET}\n`);
    else io.display({ data: timelineBundle(last), metadata: {} });
    return;
  }
  if (last === undefined) throw new UsageError(`%dist timeline --export: nothing to export, ${NONE_YET}`, "--export");
  // Relative to the kernel's folder, which Jupyter sets to the notebook's.
  const path = resolve(exportFile);
  let written: ExportedTrace;
  try {
    written = await exportChromeTrace(last, path);
  } catch (error) {
    throw new UsageError(`%dist timeline --export: cannot write ${path}: ${(error as Error).message}`, "--export");
  }
  io.stream("stdout", exportReport(last, written));
}

/** What was written, and per rank the figures HTA's analyses should report for its file. */
function exportReport(payload: TimelinePayload, written: ExportedTrace): string {
  const steps = written.figures[0]?.steps ?? [];
  const lines = [
    `wrote the Chrome trace of ${payload.ranks.length} ranks (${payload.spans.length} spans) to ${written.combined} (open it in Perfetto or chrome://tracing)`,
    `and one file per rank for Holistic Trace Analysis in ${written.htaFolder} (TraceAnalysis(trace_dir=...))`,
  ];
  if (steps.length === 0) {
    lines.push("no training steps marked: wrap each step in dist.step(n, fn) so HTA can group the trace by ProfilerStep");
  } else {
    lines.push(`steps ${steps[0]}..${steps[steps.length - 1]}; what HTA should report, percent of each rank's window from its first kernel to its last:`);
  }
  lines.push("rank  compute  non-compute  idle    comm/compute overlap");
  const pct = (v: number): string => `${v.toFixed(1)}%`.padStart(7);
  for (const f of written.figures as HtaFigures[]) {
    lines.push(`${String(f.rank).padStart(4)}  ${pct(f.computePct)}  ${pct(f.nonComputePct)}      ${pct(f.idlePct)}  ${pct(f.overlapPct)}`);
  }
  return `${lines.join("\n")}\n`;
}
