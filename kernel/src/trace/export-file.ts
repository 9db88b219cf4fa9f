/**
 * `%dist timeline --export FILE`: writes the Chrome trace of a timeline.
 * With `perRank`, also one file per rank beside it (`FILE` without `.json`
 * + `.rank<N>.json`), the layout Holistic Trace Analysis reads from a folder.
 */
import { writeFile } from "node:fs/promises";
import { toChromeTrace } from "./chrome-trace";
import type { TimelinePayload } from "./payload";

/** Returns the paths written. */
export async function exportChromeTrace(payload: TimelinePayload, file: string, options?: { perRank?: boolean }): Promise<string[]> {
  await writeFile(file, JSON.stringify(toChromeTrace(payload)));
  const written = [file];
  if (options?.perRank) {
    const stem = file.replace(/\.json$/i, "");
    for (const rank of payload.ranks) {
      const path = `${stem}.rank${rank.rank}.json`;
      await writeFile(path, JSON.stringify(toChromeTrace(payload, rank.rank)));
      written.push(path);
    }
  }
  return written;
}
