// The queue that runs a rank's collective calls in program order (kernel/src/comm/comm-core.ts
// CommCore.serialize): a call waits for every earlier call to settle, it starts only after the
// caller's synchronous code, and a failed call, however it fails, does not stop the ones after it.
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

test("a call starts after the caller's own synchronous code, even with none in flight", async () => {
  // On a shm world a collective blocks its thread until every rank has entered it: started at
  // once, `p = allReduce(x); send(y, 1)` would never make its send (the peer: recv, then allReduce).
  const queue = core();
  const log: string[] = [];
  const call = queue.serialize(async () => (log.push("call starts"), 1));
  log.push("caller goes on");
  assert.equal(await call, 1);
  assert.deepEqual(log, ["caller goes on", "call starts"]);
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
