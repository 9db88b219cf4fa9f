// Communication spans coloured by mesh dimension: a real 4-rank %%distributed
// cell runs compose() as DP 2 x TP 2 and as TP 2 inside PP 2, and its
// timeline's comm spans carry their mesh group in `args.group`; the live
// timeline's renderer (extension/src/traces.ts) draws each dimension in its
// own colour with its own legend entry, and a comm span of no mesh in the
// comm colour.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { CATEGORY_COLORS, type TimelineSpan } from "../../kernel/src/trace";
import { MESH_DIMENSION_COLORS, meshDimensionOfSpan } from "../../kernel/src/trace/mesh-dimension";
import { buildRows } from "../../extension/src/rows";
import { buildSpanTraces, drawClassOf } from "../../extension/src/traces";
import { RecordingIO } from "./cluster-io";
import { distributedSessionFixture } from "./session-fixture";

const fixture = distributedSessionFixture();

// Two composed runs, two steps each, and one plain world allReduce (no mesh).
const COMPOSED_CELL = `
import { compose } from "distlab/techniques";
import { createTinyGpt } from "distlab/models";
const tokens = tf.tensor2d(Array.from({ length: 4 * 8 }, (_, i) => (i * 7 + 3) % 13), [4, 8], "int32");
const labels = tf.tensor2d(Array.from({ length: 4 * 8 }, (_, i) => (i * 5 + 1) % 13), [4, 8], "int32");
for (const mesh of [{ dp: 2, tp: 2, pp: 1 }, { dp: 1, tp: 2, pp: 2 }]) {
  const plan = compose(createTinyGpt({ vocabSize: 13, blockSize: 8, nEmbd: 16, nHead: 4, nLayer: 2, seed: 1 }), dist, mesh, { microBatches: 2 });
  for (let step = 0; step < 2; step++) await plan.step({ x: tokens, y: labels });
  plan.dispose();
}
await dist.allReduce(new Float32Array(4));
dist.rank`;

test("a composed run's comm spans carry their mesh dimension, and the timeline draws dp, tp and pp in distinct colours with a legend", async () => {
  const io = new RecordingIO();
  const outcome = await fixture.session.runCell(COMPOSED_CELL, 1, parseDistributedFlags(["-n", "4"]), io);
  assert.equal(outcome.status, "ok", JSON.stringify(outcome) + io.streams.map((s) => s.text).join(""));
  const payload = fixture.observer.last!;
  const comm = payload.spans.filter((s) => s.cat === "comm" && s.args?.op !== "barrier");
  // Every rank's comm spans, by the dimension their own group arg names.
  for (const rank of [0, 1, 2, 3]) {
    const counts: Record<string, number> = {};
    for (const s of comm.filter((c) => c.rank === rank)) {
      const d = meshDimensionOfSpan(s) ?? `no mesh (${String(s.args?.group)})`;
      counts[d] = (counts[d] ?? 0) + 1;
    }
    // DP 2 x TP 2: 2 steps x (2 layers x 4 tp allReduces, 1 dp allReduce).
    // TP 2 in PP 2: 2 steps x (2 micro-batches x 4 tp allReduces for the stage's one block; 2 messages each way
    // and 1 loss allReduce on pp). compose's own "dp gradient allReduce" phase names its group too.
    assert.deepEqual(counts, { tp: 2 * 8 + 2 * 8, dp: 2 * 2, pp: 2 * 5, "no mesh (world)": 1 }, `rank ${rank}: ${JSON.stringify(counts)}`);
  }
  // The renderer, on the payload as the extension receives it.
  const rows = buildRows(payload);
  const durationUs = payload.spans.reduce((m, s) => Math.max(m, s.ts + s.dur), 0);
  const widthPx = 200_000;
  const { traces } = buildSpanTraces(rows, { startUs: 0, endUs: durationUs, widthPx }, 26);
  const legend = traces.filter((t) => (t as { mode?: string; showlegend?: boolean }).mode === "lines" && (t as { showlegend?: boolean }).showlegend !== false) as unknown as { name: string; legendgroup: string; line: { color: string }; x: (number | null)[] }[];
  const byGroup = new Map(legend.map((t) => [t.legendgroup, t]));
  // Spans at least 2 pixels wide are drawn on their own, starting at ts / 1000 ms.
  const drawnAlone = (s: TimelineSpan) => s.dur >= (2 * durationUs) / widthPx;
  for (const d of ["dp", "tp", "pp"] as const) {
    const trace = byGroup.get(`comm ${d}`);
    assert.ok(trace, `no legend entry for ${d}: ${legend.map((t) => t.name).join(", ")}`);
    assert.equal(trace.line.color, MESH_DIMENSION_COLORS[d]);
    assert.match(trace.name, new RegExp(`comm · ${d}`));
    const starts = new Set(trace.x.filter((_, i) => i % 3 === 0));
    const alone = comm.filter((s) => meshDimensionOfSpan(s) === d && drawnAlone(s));
    assert.ok(alone.length > 0, `${d}: no span wide enough to draw on its own`);
    const missing = alone.filter((s) => !starts.has(s.ts / 1000));
    assert.equal(missing.length, 0, `${d}: ${missing.length} of its ${alone.length} spans are not drawn in its colour (${missing[0]?.name} on rank ${missing[0]?.rank})`);
  }
  const colours = ["dp", "tp", "pp", "comm"].map((k) => (k === "comm" ? byGroup.get("comm")!.line.color : byGroup.get(`comm ${k}`)!.line.color));
  assert.equal(new Set([...colours, ...Object.values(CATEGORY_COLORS)]).size, colours.length + Object.keys(CATEGORY_COLORS).length - 1, `colours ${colours.join(" ")} must differ from each other and the other categories'`);
  assert.equal(byGroup.get("comm")!.line.color, CATEGORY_COLORS.comm);
  const world = comm.find((s) => s.args?.group === "world") as TimelineSpan;
  assert.equal(drawClassOf(world), "comm", "a comm span of no mesh keeps the comm colour");
});
