/**
 * `%dist timeline --export FILE`: writes the Chrome trace of a timeline to
 * FILE (every rank, for Perfetto and chrome://tracing) and, in a folder
 * beside it (FILE without `.json` + `.hta/`), one file per rank for Holistic
 * Trace Analysis: `TraceAnalysis(trace_dir=...)` loads every file of a folder,
 * so the combined trace must not sit among them.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { toChromeTrace } from "./chrome-trace";
import { toHtaTrace, type HtaFigures } from "./hta-trace";
import type { TimelinePayload } from "./payload";

export interface ExportedTrace {
  /** the combined Chrome trace */
  combined: string;
  /** the folder of per-rank files for HTA */
  htaFolder: string;
  /** its files, by rank */
  perRank: string[];
  /** per rank, what HTA should find in its file */
  figures: HtaFigures[];
}

export async function exportChromeTrace(payload: TimelinePayload, file: string, backend = "distlab"): Promise<ExportedTrace> {
  await writeFile(file, JSON.stringify(toChromeTrace(payload)));
  const htaFolder = `${file.replace(/\.json$/i, "")}.hta`;
  await mkdir(htaFolder, { recursive: true });
  const perRank: string[] = [];
  const figures: HtaFigures[] = [];
  for (const rank of payload.ranks) {
    const trace = toHtaTrace(payload, rank.rank, backend);
    const path = join(htaFolder, `rank${rank.rank}.json`);
    // Indented: HTA finds each file's rank by the first `"rank": N` (with a space) in its text,
    // and distributedInfo comes first.
    await writeFile(path, JSON.stringify(trace, null, 1));
    perRank.push(path);
    figures.push(trace.distlab);
  }
  return { combined: file, htaFolder, perRank, figures };
}
