// A rank whose host clock runs 250 ms ahead: its batches, given its host's
// estimate, land on the kernel's clock in the payload, the timeline's rows and
// hover name the offset, and the Chrome trace carries the aligned times.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TimelineAggregator, toChromeTrace } from "../../kernel/src/trace";
import { buildRows } from "../../extension/src/rows";
import { spanHoverText } from "../../extension/src/traces";

const CELL_START_US = 1_700_000_000_000_000;
const SKEW_US = 250_000;

test("a skewed host's spans move onto the kernel's clock and its offset shows in the hover and the trace", () => {
  const aggregator = new TimelineAggregator({ ranks: [{ rank: 0, host: "kernel-host", device: "cpu" }, { rank: 1, host: "node2", device: "cpu" }], cellStartUs: CELL_START_US });
  aggregator.setClockOffset(1, { offsetUs: SKEW_US, uncertaintyUs: 40, roundTripUs: 80, samples: 16 });
  // One barrier that both ranks left at the same instant: rank 1 stamped it on a clock 250 ms ahead.
  const barrier = (start: number) => ({ name: "barrier", cat: "comm" as const, start, dur: 500, args: { op: "barrier", seq: 0, group: "world" } });
  aggregator.add({ rank: 0, spans: [barrier(CELL_START_US + 10_000)] });
  aggregator.add({ rank: 1, spans: [barrier(CELL_START_US + 10_000 + SKEW_US)] });
  const payload = aggregator.payload(false);
  const ends = payload.spans.filter((span) => span.name === "barrier").map((span) => [span.rank, span.ts + span.dur]);
  assert.deepEqual(ends, [[0, 10_500], [1, 10_500]]);
  assert.equal(payload.ranks[1]!.clockOffsetUs, SKEW_US);
  assert.equal(payload.ranks[1]!.clockUncertaintyUs, 40);

  const rows = buildRows(payload);
  const [row0, row1] = rows;
  assert.equal(row0!.clock, undefined);
  assert.equal(row1!.clock, "+250.000 ms ± 0.040 ms");
  assert.match(spanHoverText(row1!.spans[0]!, row1!.clock), /host clock \+250\.000 ms ± 0\.040 ms \(aligned to the kernel's\)/);

  const trace = toChromeTrace(payload);
  const exported = trace.traceEvents.filter((event) => event.ph === "X" && event.name === "barrier").map((event) => [event.pid, event.ts! + event.dur!]);
  assert.deepEqual(exported, [[0, 10_500], [1, 10_500]]);
  const names = trace.traceEvents.filter((event) => event.ph === "M" && event.name === "process_name").map((event) => (event.args as { name: string }).name);
  assert.deepEqual(names, ["rank 0 (kernel-host cpu)", "rank 1 (node2 cpu), host clock 250.000 ms ± 0.040 ms, aligned"]);
});
