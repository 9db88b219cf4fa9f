/**
 * The table of a gpt2.sh run, made with bench/stats.ts from the raw step
 * times its JSON lines hold: each timed block as median [min, max] ms, and
 * PyTorch eager's median (the explicit-attention twin timed just before
 * it) over it, the speed ratio (>= 0.5 is the target).
 *   node .gpu-run/gpt2-summary.cjs gpt2-bench.jsonl      (bundled by build.mjs)
 */
import { readFileSync } from "node:fs";
import { formatSummary, formatTable, ratioOfMedians, summarize, type Summary } from "../stats";

interface StepRecord { step?: string; framework?: string; attention?: string; variant?: string; settings?: Record<string, string>; dawn?: string; ms?: number[]; backend?: string; error?: string }

const lines = readFileSync(process.argv[2] ?? "gpt2-bench.jsonl", "utf8").split("\n").filter((l) => l.startsWith("{"));
const rows: string[][] = [["side", "settings", "step ms, median [min, max]", "PyTorch eager / it"]];
let anchor: Summary | undefined;
let process_ = 0;
for (const line of lines) {
  const r = JSON.parse(line) as StepRecord;
  if (r.backend === "webgpu") process_++;
  if (r.step !== "gpt2" || !r.ms) continue;
  const s = summarize(r.ms, `${r.framework ?? r.variant} step`);
  if (r.framework) {
    if (r.attention === "explicit") anchor = s;
    rows.push([`${r.framework} eager f32, ${r.attention} attention`, "", formatSummary(s), r.attention === "explicit" ? "1" : (anchor ? ratioOfMedians(anchor, s).toFixed(2) : "")]);
  } else {
    const settings = Object.entries(r.settings ?? {}).map(([k, v]) => `${k}=${v}`).concat(r.dawn ? [`DISTLAB_WEBGPU_DAWN=${r.dawn}`] : []).join(" ");
    rows.push([`webgpu ${r.variant ?? `${r.attention} attention`} (process ${process_})`, settings, formatSummary(s), anchor ? ratioOfMedians(anchor, s).toFixed(2) : ""]);
  }
}
console.log(formatTable(rows));
