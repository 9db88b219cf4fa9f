// Property-based: every collective, over a real shared-memory world of
// 1..8 rank threads, against the plain reference in comm-reference.ts, for
// every dtype, op and algorithm, with lengths including 0, 1 and lengths not
// divisible by the rank count, with inputs and outputs in registered memory
// (comm.alloc) on some ranks and not others. Rings and staging slots are made
// small (4 KiB) so that messages wrap around rings and span many direct-path chunks.
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { availableParallelism } from "node:os";
import { ThreadWorld } from "./comm-harness";
import { attachShmCommunicator, createShmWorld, type CommSpan, type SpanHook } from "../../kernel/src/comm";
import { createCommThreadWorld } from "../../kernel/src/comm/comm-thread";
import { DTYPE_CTORS, expected, fill, REDUCE_OPS } from "./comm-reference";

const OPS = ["allReduce", "reduce", "reduceScatter", "allGather", "broadcast", "gather", "scatter", "allToAll", "barrier"] as const;
const powerOfTwo = (n: number) => (n & (n - 1)) === 0;
const algorithmsFor = (op: string, n: number): (string | undefined)[] => {
  switch (op) {
    case "allReduce": return [undefined, "ring", "recursive-doubling", "rhd", "direct", "pairwise"];
    case "broadcast": return [undefined, "ring", "recursive-doubling", "direct"];
    case "reduceScatter":
    case "allGather": return [undefined, "ring", "direct", ...(powerOfTwo(n) ? ["rhd"] : [])];
    default: return [undefined];
  }
};
/** ops whose result may be written into the input itself ({out: x}) */
const IN_PLACE = new Set(["allReduce", "broadcast"]);

const arbCase = (n: number) =>
  fc.record({
    op: fc.constantFrom(...OPS),
    dtype: fc.integer({ min: 0, max: DTYPE_CTORS.length - 1 }),
    length: fc.oneof(fc.constantFrom(0, 1, n - 1, n + 1, 2 * n + 1), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1000, max: 5000 })),
    root: fc.integer({ min: 0, max: n - 1 }),
    redop: fc.constantFrom(...REDUCE_OPS),
    algorithmIndex: fc.nat(5),
    inPlace: fc.boolean(),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    small: fc.boolean(),
    // per rank: bit 0 input, bit 1 output (allReduce) from comm.alloc; ranks may differ
    registeredMask: fc.array(fc.nat(3), { minLength: n, maxLength: n }),
    registered: fc.boolean(),
  });

for (let n = 1; n <= 8; n++) {
  describe(`shm world of ${n} rank threads`, () => {
    let world: ThreadWorld;
    before(() => { world = new ThreadWorld(n, { collectiveRingBytes: 4096, slotBytes: 4096, comm: { timeoutMs: 20_000 } }); });
    after(() => world.close());

    test("every collective equals the reference for random dtypes, ops, lengths and algorithms", async () => {
      await fc.assert(
        fc.asyncProperty(arbCase(n), async (c) => {
          const ctor = DTYPE_CTORS[c.dtype];
          const isFloat = c.dtype < 2;
          const xs = Array.from({ length: n }, (_, r) => fill(ctor, c.length, c.seed + r * 7919, isFloat || c.small || c.redop === "product"));
          const choices = algorithmsFor(c.op, n);
          const algorithm = choices[c.algorithmIndex % choices.length];
          const options = { op: c.redop, ...(algorithm ? { algorithm } : {}) };
          const inPlace = c.inPlace && IN_PLACE.has(c.op);
          const registered = (r: number) => (c.registered ? { input: (c.registeredMask[r] & 1) !== 0, output: (c.registeredMask[r] & 2) !== 0 } : undefined);
          const results = await world.values("collective", xs.map((x, r) => ({ op: c.op, x, root: c.root, options, inPlace, registered: registered(r) })));
          for (let r = 0; r < n; r++) {
            const want = expected(c.op, xs, r, c.root, c.redop);
            if (want === null) assert.equal(results[r], null);
            else assert.deepEqual(results[r], want, `rank ${r} of ${n}: ${c.op} ${ctor.name}[${c.length}] ${c.redop} ${algorithm ?? "auto"}${inPlace ? " in place" : ""}${c.registered ? ` registered ${c.registeredMask}` : ""}`);
          }
        }),
        { numRuns: n <= 4 ? 60 : 30 },
      );
    });

    test("direct collectives with inputs and outputs in registered memory on some ranks, in place or not, equal the reference", async () => {
      const directOps = ["allReduce", "reduceScatter", "allGather", "broadcast"] as const;
      await fc.assert(
        fc.asyncProperty(arbCase(n), fc.constantFrom(...directOps), async (c, op) => {
          const ctor = DTYPE_CTORS[c.dtype];
          const xs = Array.from({ length: n }, (_, r) => fill(ctor, c.length, c.seed + r * 7919, c.dtype < 2 || c.small || c.redop === "product"));
          const options = { op: c.redop, algorithm: "direct" };
          const inPlace = c.inPlace && IN_PLACE.has(op);
          const args = xs.map((x, r) => ({
            op, x, root: c.root, options, inPlace, registered: { input: (c.registeredMask[r] & 1) !== 0, output: (c.registeredMask[r] & 2) !== 0 },
          }));
          const results = await world.values("collective", args);
          for (let r = 0; r < n; r++) {
            const want = expected(op, xs, r, c.root, c.redop);
            assert.deepEqual(results[r], want, `rank ${r} of ${n}: ${op} ${ctor.name}[${c.length}] ${c.redop}${inPlace ? " in place" : ""} registered ${c.registeredMask}`);
          }
        }),
        { numRuns: n <= 4 ? 40 : 20 },
      );
    });
  });
}

test("registered memory: alloc gives zeroed arrays in the world's memory, free reuses them, bad input is named", async () => {
  const world = new ThreadWorld(2, { comm: { timeoutMs: 5_000 } });
  try {
    const replies = await world.values("allocate", [0, 1].map(() => ({})));
    for (const [r, reply] of replies.entries()) {
      assert.deepEqual(reply, {
        zeroed: true, shared: true, reusedAddress: true, zeroedAfterReuse: true,
        badDtype: "alloc: dtype must be one of Float32Array, Float64Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array, got Array",
        badLength: "alloc: length must be an integer >= 0, got -1",
        foreignFree: `free: rank ${r} got an array that its alloc() did not return (or that was freed already)`,
        tooLarge: true,
      });
    }
  } finally {
    await world.close();
  }
});

test("rhd reduceScatter and allGather on 3 ranks are refused naming the group size; direct on a group is refused", async () => {
  const world = new ThreadWorld(3, { comm: { timeoutMs: 5_000 } });
  try {
    const x = new Float32Array(6);
    for (const op of ["reduceScatter", "allGather"]) {
      const replies = await world.run("collective", [0, 1, 2].map(() => ({ op, x, options: { algorithm: "rhd" } })));
      for (const r of replies) assert.equal(r.error!.message, `${op}: algorithm "rhd" needs a power-of-two group size, got 3 ranks; use "ring"`);
    }
    const groups = await world.run("groupDirect", [0, 1, 2].map(() => ({ x })));
    for (const r of groups) assert.match(r.error!.message, /allReduce: algorithm "direct" needs the world communicator of a shm \(thread\) world/);
  } finally {
    await world.close();
  }
});

// A waiting rank polls before it sleeps (shm-world.ts, DEFAULT_SPIN_MS, says why 1 ms): the lower bound
// is what the transport guarantees, so the check holds on a loaded machine too (being descheduled only
// makes the first sleep later).
test("a rank thread waiting for a late peer polls for the world's spinMs before its first sleep", { skip: availableParallelism() < 2 && "needs 2 cores (ranks that outnumber cores sleep at once)" }, async () => {
  for (const [spinMs, options] of [[1, {}], [5, { spinMs: 5 }]] as const) {
    const world = new ThreadWorld(2, options);
    try {
      assert.equal(world.init.spinMs, spinMs);
      const [waiting, late] = await world.values("firstSleep", [{ delayMs: 0 }, { delayMs: 40 }]) as (number | null)[];
      assert.ok(waiting !== null, "the rank that waited 40 ms for its peer never slept");
      assert.ok(waiting >= spinMs, `the waiting rank first slept ${waiting.toFixed(3)} ms after entering; it must poll for ${spinMs} ms first`);
      assert.ok(late === null || late >= 0);
    } finally {
      await world.close();
    }
  }
  assert.equal(createCommThreadWorld(2).spinMs, 0.05, "comm threads poll briefly: their rank's thread computes on the cores they would poll on");
  assert.throws(() => createShmWorld(2, { spinMs: -1 }), /spinMs must be a finite number of milliseconds >= 0, got -1/);
});

// With the timeline off (`%%distributed --timeline off`) the rank's hook says it is not recording, and a call
// then builds no span and reads no clock for one; the hook is still asked before every call.
test("a span hook that is not recording is not called; one that records gets each call", async () => {
  const reports: CommSpan[] = [];
  let recording = false;
  const hook: SpanHook = Object.defineProperty((span: CommSpan) => void reports.push(span), "recording", { get: () => recording });
  const comm = attachShmCommunicator(createShmWorld(1), 0, { onSpan: hook });
  await comm.allReduce(new Float32Array(4));
  await comm.broadcast(new Float32Array(4), 0);
  assert.equal(reports.length, 0, `the hook got ${reports.length} span(s) while not recording`);
  recording = true;
  await comm.allReduce(new Float32Array(4));
  assert.deepEqual(reports.map((s) => [s.op, s.bytes, s.call]), [["allReduce", 16, 3]]);
  const always: CommSpan[] = [];
  const plain = attachShmCommunicator(createShmWorld(1), 0, { onSpan: (span) => void always.push(span) });
  await plain.allReduce(new Float32Array(4));
  assert.equal(always.length, 1, "a hook without `recording` records");
});
