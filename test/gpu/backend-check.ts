/**
 * `%%distributed --backend gpus` on a real multi-GPU machine, without the
 * kernel's TypeScript compiler: cells compiled beforehand by
 * build-backend-check.ts run on a gpus group started exactly as the kernel
 * starts one (cluster/backends/plan-group.ts). Prints each rank's device and values;
 * exits 1 unless every cell succeeds and the ranks report different GPUs.
 *
 *   node build/gpu-check/backend-check.js     (test/gpu/backend-check.sh sets up a device machine)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import type { CompiledCell } from "../../kernel/src/repl/cell-compiler";

interface PrecompiledCell {
  flags: string;
  source: string;
  compiled: CompiledCell;
}

async function main(): Promise<void> {
  const cells = JSON.parse(readFileSync(join(__dirname, "cells.json"), "utf8")) as PrecompiledCell[];
  const plan = planGroup(parseDistributedFlags(cells[0]!.flags.split(" ")));
  console.log(`shape: ${JSON.stringify(plan.shape)}`);
  const group = plan.start((rank, event) => {
    if (event.kind === "stream") process.stdout.write(`[rank ${rank}] ${event.text}`);
  });
  let failed = false;
  try {
    for (const [index, cell] of cells.entries()) {
      const started = performance.now();
      const result = await group.runCell({
        cellId: index + 1, cell: cell.compiled, cellName: `cell ${index + 1}`, timeoutMs: 60_000, interrupt: new AbortController().signal, timeline: true,
      });
      console.log(`\ncell ${index + 1} (${(performance.now() - started).toFixed(0)} ms):\n${cell.source}`);
      result.outcomes.forEach((outcome, rank) => console.log(`  rank ${rank}: ${JSON.stringify(outcome.ok ? outcome.value.json : outcome.error)}`));
      if (result.outcomes.some((outcome) => !outcome.ok)) failed = true;
    }
    const devices = group.ranks.map((rank) => rank.device);
    console.log(`\ndevices: ${JSON.stringify(devices)}`);
    if (new Set(devices).size !== devices.length) failed = true;
  } finally {
    await group.close();
  }
  console.log(failed ? "FAILED" : "OK: every cell ran on every GPU rank");
  process.exit(failed ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(error);
  console.log("FAILED");
  process.exit(1);
});
