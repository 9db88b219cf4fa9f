// bench/stats.ts: the rules every bench figure follows (median of >= 5
// repetitions with min and max, ratios of medians, flags that name themselves).
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatSummary, intOption, listOption, mapSummary, MIN_REPS, ratioOfMedians, repsOption, summarize } from "../../bench/stats";

test("summarize: median of an odd and an even count, with min and max, whatever the order", () => {
  assert.deepEqual(summarize([5, 1, 4, 2, 3]), { median: 3, min: 1, max: 5, reps: 5 });
  assert.deepEqual(summarize([6, 1, 5, 2, 4, 3]), { median: 3.5, min: 1, max: 6, reps: 6 });
});

test("summarize refuses fewer than MIN_REPS repetitions and non-finite ones, naming the figure", () => {
  assert.equal(MIN_REPS, 5);
  assert.throws(() => summarize([1, 2, 3, 4], "gloo allReduce 4096"), /gloo allReduce 4096: 4 repetitions, at least 5/);
  assert.throws(() => summarize([1, 2, 3, 4, NaN], "x"), /x: repetition NaN is not a finite number/);
});

test("mapSummary through a decreasing function (time -> bandwidth) swaps min and max", () => {
  const time = summarize([1, 2, 4, 4, 8]); // ms
  assert.deepEqual(mapSummary(time, (ms) => 8 / ms), { median: 2, min: 1, max: 8, reps: 5 });
  assert.equal(formatSummary(mapSummary(time, (ms) => 8 / ms), 1), "2.0 [1.0, 8.0]");
});

test("ratioOfMedians uses the medians, not the best repetition", () => {
  const ours = summarize([10, 10, 10, 1, 10]);
  const theirs = summarize([20, 20, 20, 20, 2]);
  assert.equal(ratioOfMedians(ours, theirs), 0.5);
});

test("options: a bad value throws naming the flag; --reps below MIN_REPS is refused", () => {
  assert.equal(intOption(["--steps", "12"], "steps", 10), 12);
  assert.equal(intOption([], "steps", 10), 10);
  assert.throws(() => intOption(["--steps", "x"], "steps", 10), /--steps: expected an integer >= 1, got "x"/);
  assert.throws(() => intOption(["--steps"], "steps", 10), /--steps: expected an integer >= 1, got nothing/);
  assert.throws(() => repsOption(["--reps", "3"]), /--reps: expected an integer >= 5, got "3"/);
  assert.deepEqual(listOption(["--ops", "allReduce,broadcast"], "ops", [], ["allReduce", "broadcast"]), ["allReduce", "broadcast"]);
  assert.throws(() => listOption(["--ops", "allreduce"], "ops", [], ["allReduce"]), /--ops: unknown value "allreduce" \(known: allReduce\)/);
});
