import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { epochMicros, estimateClockOffset, toLocalClock, type PingSample } from "../../kernel/src/trace";

/** A ping against a remote clock `offsetUs` ahead, with the given one-way delays and processing time. */
function ping(sentUs: number, offsetUs: number, outUs: number, backUs: number, processingUs: number): PingSample {
  const remoteReceivedUs = sentUs + outUs + offsetUs;
  const remoteSentUs = remoteReceivedUs + processingUs;
  return { sentUs, remoteReceivedUs, remoteSentUs, receivedUs: remoteSentUs - offsetUs + backUs };
}

test("symmetric delays give the exact offset and the round trip without processing time", () => {
  const est = estimateClockOffset([ping(0, 5_000, 40, 40, 300)]);
  assert.equal(est.offsetUs, 5_000);
  assert.equal(est.roundTripUs, 80);
  assert.equal(est.uncertaintyUs, 40);
});

test("the sample with the smallest round trip wins", () => {
  const est = estimateClockOffset([ping(0, -2_000, 900, 100, 10), ping(1_000, -2_000, 30, 20, 10), ping(2_000, -2_000, 500, 40, 10)]);
  assert.equal(est.roundTripUs, 50);
  assert.equal(est.offsetUs, -2_000 + 5);
  assert.equal(est.samples, 3);
});

test("the true offset always lies within offset +- uncertainty", () => {
  fc.assert(
    fc.property(
      fc.double({ min: -1e9, max: 1e9, noNaN: true }),
      fc.array(fc.tuple(fc.double({ min: 0, max: 1e5, noNaN: true }), fc.double({ min: 0, max: 1e5, noNaN: true }), fc.double({ min: 0, max: 1e3, noNaN: true })), { minLength: 1, maxLength: 20 }),
      (offset, delays) => {
        const est = estimateClockOffset(delays.map(([o, b, p], i) => ping(i * 1e6, offset, o, b, p)));
        assert.ok(Math.abs(est.offsetUs - offset) <= est.uncertaintyUs + 1e-6 * (1 + Math.abs(offset)));
      },
    ),
  );
});

test("unusable samples are skipped and none usable is a RangeError", () => {
  const broken: PingSample = { sentUs: 10, remoteReceivedUs: 0, remoteSentUs: 0, receivedUs: 5 };
  assert.equal(estimateClockOffset([broken, ping(0, 7, 1, 1, 0)]).samples, 1);
  assert.throws(() => estimateClockOffset([broken]), RangeError);
  assert.throws(() => estimateClockOffset([]), RangeError);
});

test("toLocalClock moves a remote time back by the offset", () => {
  assert.equal(toLocalClock(10_500, { offsetUs: 500 }), 10_000);
});

test("epochMicros agrees between worker threads within a millisecond", async () => {
  const { Worker } = await import("node:worker_threads");
  const worker = new Worker("const {parentPort}=require('node:worker_threads');parentPort.postMessage((performance.timeOrigin+performance.now())*1000);", { eval: true });
  const before = epochMicros();
  const theirs = await new Promise<number>((resolve) => worker.once("message", resolve));
  const after = epochMicros();
  await worker.terminate();
  assert.ok(theirs >= before - 1_000 && theirs <= after + 1_000, `${before} <= ${theirs} <= ${after}`);
  assert.ok(Math.abs(epochMicros() / 1000 - Date.now()) < 50, "epochMicros is wall-clock microseconds");
});
