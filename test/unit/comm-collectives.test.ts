// Property-based: every collective, over a real shared-memory world of
// 1..8 rank threads, against the plain reference in comm-reference.ts, for
// every dtype, op and algorithm, with lengths including 0, 1 and lengths not
// divisible by the rank count. Rings and staging slots are made small (4 KiB)
// so that messages wrap around rings and span many direct-path chunks.
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { ThreadWorld } from "./comm-harness";
import { DTYPE_CTORS, expected, fill, REDUCE_OPS } from "./comm-reference";

const OPS = ["allReduce", "reduce", "reduceScatter", "allGather", "broadcast", "gather", "scatter", "allToAll", "barrier"] as const;
const ALGORITHMS: Record<string, (string | undefined)[]> = {
  allReduce: [undefined, "ring", "recursive-doubling", "direct"],
  broadcast: [undefined, "ring", "recursive-doubling"],
};

const arbCase = (n: number) =>
  fc.record({
    op: fc.constantFrom(...OPS),
    dtype: fc.integer({ min: 0, max: DTYPE_CTORS.length - 1 }),
    length: fc.oneof(fc.constantFrom(0, 1, n - 1, n + 1, 2 * n + 1), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1000, max: 5000 })),
    root: fc.integer({ min: 0, max: n - 1 }),
    redop: fc.constantFrom(...REDUCE_OPS),
    algorithmIndex: fc.nat(3),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    small: fc.boolean(),
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
          const choices = ALGORITHMS[c.op] ?? [undefined];
          const algorithm = choices[c.algorithmIndex % choices.length];
          const options = { op: c.redop, ...(algorithm ? { algorithm } : {}) };
          const results = await world.values("collective", xs.map((x) => ({ op: c.op, x, root: c.root, options })));
          for (let r = 0; r < n; r++) {
            const want = expected(c.op, xs, r, c.root, c.redop);
            if (want === null) assert.equal(results[r], null);
            else assert.deepEqual(results[r], want, `rank ${r} of ${n}: ${c.op} ${ctor.name}[${c.length}] ${c.redop} ${algorithm ?? "auto"}`);
          }
        }),
        { numRuns: n <= 4 ? 60 : 30 },
      );
    });
  });
}
