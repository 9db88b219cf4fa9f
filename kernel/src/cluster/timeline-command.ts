/**
 * `%dist timeline [--export FILE]`: shows the last distributed cell's
 * timeline again, or writes it as a Chrome trace (one combined file that
 * Perfetto opens, and one file per rank beside it for Holistic Trace
 * Analysis).
 */
import { resolve } from "node:path";
import { UsageError } from "../errors";
import type { ExecutionIO } from "../protocol/backend";
import { exportChromeTrace, timelineBundle, type TimelinePayload } from "../trace";

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
  let written: string[];
  try {
    written = await exportChromeTrace(last, path, { perRank: true });
  } catch (error) {
    throw new UsageError(`%dist timeline --export: cannot write ${path}: ${(error as Error).message}`, "--export");
  }
  const [combined, ...perRank] = written;
  io.stream(
    "stdout",
    `wrote the Chrome trace of ${last.ranks.length} ranks (${last.spans.length} spans) to ${combined} (open it in Perfetto or chrome://tracing)\n` +
      `and one file per rank for Holistic Trace Analysis: ${perRank.join(", ")}\n`,
  );
}
