// The queue that runs a rank's collective calls in program order (kernel/src/comm/comm-core.ts
// CommCore.serialize): a call waits for every earlier call to settle, a call made with none in
// flight starts at once, and a failed call, however it fails, does not stop the ones after it.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { CommCore } from "../../kernel/src/comm/comm-core";
import type { Transport } from "../../kernel/src/comm/transport";

/** A core whose queue is all that is used: serialize never touches the transport. */
const core = (): CommCore => new CommCore({} as Transport, {});

/** A promise and the functions that settle it. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

test("a call starts only after every earlier call has settled, in the order they were made", async () => {
  const queue = core();
  const log: string[] = [];
  const first = deferred<string>();
  const second = deferred<string>();
  const a = queue.serialize(() => (log.push("a starts"), first.promise));
  const b = queue.serialize(() => (log.push("b starts"), second.promise));
  const c = queue.serialize(async () => (log.push("c starts"), "c"));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(log, ["a starts"], "b and c started while a was in flight");
  first.resolve("a");
  assert.equal(await a, "a");
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(log, ["a starts", "b starts"], "c started while b was in flight");
  second.resolve("b");
  assert.deepEqual(await Promise.all([b, c]), ["b", "c"]);
  assert.deepEqual(log, ["a starts", "b starts", "c starts"]);
});

test("a call made with none in flight starts before serialize returns", async () => {
  const queue = core();
  let started = false;
  const call = queue.serialize(async () => {
    started = true;
    return 1;
  });
  assert.equal(started, true);
  assert.equal(await call, 1);
  // once that call has settled the queue is empty again
  await new Promise((resolve) => setImmediate(resolve));
  let again = false;
  const next = queue.serialize(async () => ((again = true), 2));
  assert.equal(again, true);
  assert.equal(await next, 2);
});

test("a call that throws, at once or later, rejects its own promise and the next call still runs", async () => {
  const queue = core();
  const thrown = queue.serialize((): Promise<number> => {
    throw new RangeError("refused at once");
  });
  const rejected = queue.serialize(() => Promise.reject(new Error("failed later")));
  const after = queue.serialize(async () => "ran");
  await assert.rejects(thrown, /refused at once/);
  await assert.rejects(rejected, /failed later/);
  assert.equal(await after, "ran");
});
