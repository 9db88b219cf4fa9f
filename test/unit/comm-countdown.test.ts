// The callback countdown a socket rank's collective waits on (kernel/src/comm/countdown.ts) and
// the agreement entries built on the same idea (agreement-window.ts): each reports once, the first
// failure wins, and nothing is reported before the last part.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { Countdown } from "../../kernel/src/comm/countdown";
import { AgreementWindow, PendingAgreement } from "../../kernel/src/comm/agreement-window";
import type { CallContext } from "../../kernel/src/comm/transport";

function recorder() {
  const seen: string[] = [];
  const countdown = new Countdown(() => seen.push("done"), (e) => seen.push(`failed: ${(e as Error).message}`));
  return { seen, countdown };
}

test("a countdown finishes once, after its last part and its seal, and not before", () => {
  const { seen, countdown } = recorder();
  const a = countdown.part();
  const b = countdown.part();
  a.done();
  a.done(); // a part reports once: this must not stand in for b
  countdown.seal();
  assert.deepEqual(seen, []);
  b.done();
  assert.deepEqual(seen, ["done"]);
  assert.equal(countdown.ended, true);
});

test("a countdown with no parts finishes when sealed; parts done before the seal do not finish it early", () => {
  const empty = recorder();
  empty.countdown.seal();
  assert.deepEqual(empty.seen, ["done"]);

  const early = recorder();
  early.countdown.part().done();
  assert.deepEqual(early.seen, [], "finished before the caller had added every part");
  early.countdown.part();
  early.countdown.seal();
  assert.deepEqual(early.seen, []);
});

test("the first failure finishes a countdown; later reports, done or failed, are ignored", () => {
  const { seen, countdown } = recorder();
  const [a, b, c] = [countdown.part(), countdown.part(), countdown.part()];
  countdown.seal();
  b.fail(new Error("lost rank 2"));
  a.done();
  c.fail(new Error("second"));
  countdown.end(new Error("timeout"));
  assert.deepEqual(seen, ["failed: lost rank 2"]);
});

const call = (n: number, epoch = 1) => ({ desc: { call: n, epoch } }) as unknown as CallContext;

test("an agreement reports its first failure to every waiter, before or after it came", () => {
  const agreement = new PendingAgreement(call(1), [2]);
  const send = agreement.part();
  const recv = agreement.part();
  const { seen: before, countdown: early } = recorder();
  agreement.whenDone(early.part());
  early.seal();
  send.done();
  assert.equal(agreement.passed, false);
  recv.fail(new Error("mismatch"));
  recv.done();
  const { seen: after, countdown: late } = recorder();
  agreement.whenDone(late.part());
  late.seal();
  assert.deepEqual(before, ["failed: mismatch"]);
  assert.deepEqual(after, ["failed: mismatch"]);
});

test("the window hands out the calls past it oldest first, keeps failed ones, and forgets checked ones", () => {
  const window = new AgreementWindow(2);
  const entries = [1, 2, 3, 4].map((n) => new PendingAgreement(call(n), [1]));
  const parts = entries.map((e) => e.part());
  window.add(entries[0]!);
  window.add(entries[1]!);
  assert.deepEqual(window.due(), []);
  parts[1]!.done(); // call 2 checked: it leaves the window when the next call comes
  parts[0]!.fail(new Error("mismatch")); // call 1 failed: kept until someone awaits it
  window.add(entries[2]!);
  window.add(entries[3]!);
  assert.deepEqual(window.due().map((e) => e.call.desc.call), [1]);
  assert.deepEqual(window.drain().map((e) => e.call.desc.call), [3, 4]);
});
