// The TCP transport between real processes: every collective against the
// reference (over TCP and over the same-host Unix-socket path), a mismatch
// across processes, and a process killed in the middle of an allReduce.
import { describe, test } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import { ProcessWorld } from "./comm-process-world";
import { DTYPE_CTORS, expected, fill, REDUCE_OPS } from "./comm-reference";
import { LINK_CASES } from "./comm-scenarios";
import { closeTcpWorld, connectTcpWorld, startTcpRendezvous } from "../../kernel/src/comm/tcp-world";

const OPS = ["allReduce", "reduce", "reduceScatter", "allGather", "broadcast", "gather", "scatter", "allToAll", "barrier"] as const;

for (const transport of ["tcp", "unix"] as const) {
  describe(`${transport} world of 3 processes`, () => {
    test("every collective equals the reference", async () => {
      const world = await ProcessWorld.start(3, { transport });
      const n = 3;
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom(...OPS), fc.integer({ min: 0, max: 7 }), fc.oneof(fc.constantFrom(0, 1, 4), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 100_000, max: 400_000 })),
            fc.integer({ min: 0, max: 2 }), fc.constantFrom(...REDUCE_OPS), fc.constantFrom(undefined, "ring", "recursive-doubling", "rhd", "pairwise"), fc.integer({ min: 1, max: 1e9 }),
            async (op, dtype, length, root, redop, algorithm, seed) => {
              const xs = Array.from({ length: n }, (_, r) => fill(DTYPE_CTORS[dtype], length, seed + r, true));
              const useAlg = op === "allReduce" || (op === "broadcast" && algorithm !== "rhd" && algorithm !== "pairwise") ? algorithm : undefined;
              const results = await world.values("collective", xs.map((x) => ({ op, x, root, options: { op: redop, ...(useAlg ? { algorithm: useAlg } : {}) } })));
              for (let r = 0; r < n; r++) {
                const want = expected(op, xs, r, root, redop);
                if (want === null) assert.equal(results[r], null);
                else assert.deepEqual(results[r], want, `rank ${r}: ${op} ${DTYPE_CTORS[dtype].name}[${length}] ${redop} ${useAlg ?? "auto"}`);
              }
            },
          ),
          { numRuns: 25 },
        );
      } finally {
        world.close();
      }
    });
  });
}

// Ranks on one machine whose /tmp differs (containers on one host): the Unix socket a peer names
// cannot be reached, so the dialler falls back to the peer's TCP address instead of failing the join.
const canUnshare = process.getuid?.() === 0 && process.platform === "linux";
test("unix: a rank whose socket file is in another mount namespace is dialled over TCP", { skip: canUnshare ? false : "needs root for unshare --mount" }, async () => {
  const world = await ProcessWorld.start(3, { transport: "unix", privateTmp: [1] });
  try {
    const xs = [0, 1, 2].map((r) => Float32Array.from({ length: 1000 }, (_, i) => r * 1000 + i));
    const results = await world.values("collective", xs.map((x) => ({ op: "allReduce", x, root: 0, options: { op: "sum" } })));
    const want = expected("allReduce", xs, 0, 0, "sum");
    for (let r = 0; r < 3; r++) assert.deepEqual(results[r], want, `rank ${r}`);
  } finally {
    world.close();
  }
});

test("tcp: a 2-rank ring allReduce of blocks several chunks long (the pipelined ring) equals the reference", async () => {
  const world = await ProcessWorld.start(2);
  try {
    // blocks of ~14 MB: 4 chunks of <= 4 MiB; lengths not divisible by 2 or by the chunking
    const cases = [
      { ctor: Float32Array, length: 7_000_003, redop: "sum", inPlace: true },
      { ctor: Int16Array, length: 14_000_011, redop: "max", inPlace: false },
    ] as const;
    for (const c of cases) {
      const xs = [0, 1].map((r) => fill(c.ctor, c.length, 1000 + r, true));
      const results = await world.values("collective", xs.map((x) => ({ op: "allReduce", x, inPlace: c.inPlace, options: { op: c.redop, algorithm: "ring" } })));
      const want = expected("allReduce", xs, 0, 0, c.redop)!;
      for (let r = 0; r < 2; r++) {
        const got = results[r] as typeof want;
        assert.equal(got.length, want.length);
        const first = want.findIndex((v, i) => v !== got[i]);
        assert.equal(first, -1, `rank ${r}: ${c.ctor.name}[${c.length}] ${c.redop}: element ${first} is ${got[first]}, want ${want[first]}`);
      }
    }
  } finally {
    world.close();
  }
});

test("tcp: a 3-rank ring allReduce of blocks cut into 1 MiB chunks (TCP_RING_CHUNK_BYTES) equals the reference", async () => {
  const world = await ProcessWorld.start(3);
  try {
    // blocks of ~4 MB and ~1.3 MB: 4 and 2 chunks, the last one short; lengths not divisible by 3
    const cases = [
      { ctor: Float32Array, length: 3_000_001, redop: "sum", inPlace: true },
      { ctor: Float64Array, length: 500_003, redop: "min", inPlace: false },
    ] as const;
    for (const c of cases) {
      const xs = [0, 1, 2].map((r) => fill(c.ctor, c.length, 2000 + r, true));
      const results = await world.values("collective", xs.map((x) => ({ op: "allReduce", x, inPlace: c.inPlace, options: { op: c.redop, algorithm: "ring" } })));
      const want = expected("allReduce", xs, 0, 0, c.redop)!;
      for (let r = 0; r < 3; r++) {
        const got = results[r] as typeof want;
        assert.equal(got.length, want.length);
        const first = want.findIndex((v, i) => v !== got[i]);
        assert.equal(first, -1, `rank ${r}: ${c.ctor.name}[${c.length}] ${c.redop}: element ${first} is ${got[first]}, want ${want[first]}`);
      }
    }
  } finally {
    world.close();
  }
});

test("tcp: a 3-rank pairwise allReduce (chunked) equals the reference and adds block j as x_j + x_(j+1) + x_(j+2), every run", async () => {
  const world = await ProcessWorld.start(3);
  try {
    // 1,500,001 floats: blocks of ~2 MB, 2 chunks each, lengths not divisible by 3
    const length = 1_500_001;
    const xs = [0, 1, 2].map((r) => fill(Float32Array, length, 3000 + r, true));
    const results = await world.values("collective", xs.map((x) => ({ op: "allReduce", x, inPlace: true, options: { algorithm: "pairwise" } })));
    const want = expected("allReduce", xs, 0, 0, "sum")!;
    for (let r = 0; r < 3; r++) {
      const got = results[r] as typeof want;
      const first = want.findIndex((v, i) => v !== got[i]);
      assert.equal(first, -1, `rank ${r}: element ${first} is ${got[first]}, want ${want[first]}`);
    }
    // Values whose float32 sum depends on the order: 1e8 + 1 rounds to 1e8, so (1e8 + 1) - 1e8 = 0
    // while (-1e8 + 1e8) + 1 = 1. Block j (of 3 elements here) must be ((x_j + x_(j+1)) + x_(j+2)).
    const parts = [1e8, 1, -1e8];
    const small = parts.map((v) => new Float32Array(9).fill(v));
    const fixedOrder = Array.from({ length: 9 }, (_, i) => {
      const j = Math.floor(i / 3);
      return Math.fround(Math.fround(parts[j]! + parts[(j + 1) % 3]!) + parts[(j + 2) % 3]!);
    });
    assert.deepEqual(fixedOrder, [0, 0, 0, 0, 0, 0, 1, 1, 1], "the values do tell orders apart");
    for (let run = 0; run < 5; run++) {
      const got = await world.values("collective", small.map((x) => ({ op: "allReduce", x: x.slice(), options: { algorithm: "pairwise" } })));
      for (let r = 0; r < 3; r++) assert.deepEqual(Array.from(got[r] as Float32Array), fixedOrder, `run ${run}, rank ${r}`);
    }
  } finally {
    world.close();
  }
});

test("tcp: allReduce against broadcast fails on both processes naming both calls", async () => {
  const world = await ProcessWorld.start(2, { timeoutMs: 5_000 });
  try {
    const x = new Float32Array(4);
    const replies = await world.run("collective", [{ op: "allReduce", x }, { op: "broadcast", x, root: 0 }]);
    for (const r of replies) {
      assert.equal(r.error?.name, "CommMismatchError", JSON.stringify(r));
      assert.match(r.error!.message, /allReduce #1 .*broadcast #1|broadcast #1 .*allReduce #1/);
    }
  } finally {
    world.close();
  }
});

test("tcp: a process killed mid-allReduce ends every other rank's wait with an error naming it", async () => {
  const world = await ProcessWorld.start(3, { timeoutMs: 10_000 });
  try {
    // 8 MiB over a 20 MB/s emulated link takes ~0.4 s per step: the kill lands mid-transfer
    const x = new Float32Array(2 * 1024 * 1024);
    const link = { bandwidth: 20e6, latency: 0 };
    const pending = world.run("collective", [0, 1, 2].map(() => ({ op: "allReduce", x, options: { algorithm: "ring", link } })));
    await new Promise((r) => setTimeout(r, 300));
    const killedAt = Date.now();
    world.children[2].kill("SIGKILL");
    const replies = await pending;
    const elapsed = Date.now() - killedAt;
    assert.equal(replies[2].ok, false);
    for (const r of replies.slice(0, 2)) {
      assert.equal(r.error?.name, "PeerLostError", JSON.stringify(r));
      assert.match(r.error!.message, /rank 2/);
    }
    assert.ok(elapsed < 5_000, `ranks took ${elapsed} ms to notice`);
  } finally {
    world.close();
  }
});

test("tcp: an emulated link makes a transfer take latency + bytes / bandwidth, within 10%", async () => {
  const world = await ProcessWorld.start(2, { timeoutMs: 10_000 });
  try {
    for (const c of LINK_CASES) {
      const want = (c.link.latency + c.bytes / c.link.bandwidth) * 1000;
      let best = Infinity;
      for (let trial = 0; trial < 3; trial++) best = Math.min(best, ((await world.values("timedTransfer", [c, c])) as number[])[0]);
      assert.ok(Math.abs(best - want) <= 0.1 * want, `${c.bytes} B: measured ${best.toFixed(2)} ms, model ${want.toFixed(2)} ms`);
    }
  } finally {
    world.close();
  }
});

test("tcp: aborting a rank's signal ends its waits at once, naming each call, and refuses its later calls", async () => {
  // both ranks in this process: rank 1 never takes part, so only the abort can end rank 0's waits
  const rendezvous = await startTcpRendezvous(2);
  const canceller = new AbortController();
  const options = { size: 2, rendezvous: rendezvous.address, credentials: rendezvous.credentials, timeoutMs: 30_000 };
  const [zero, one] = await Promise.all([
    connectTcpWorld({ ...options, rank: 0, signal: canceller.signal }),
    connectTcpWorld({ ...options, rank: 1 }),
  ]);
  rendezvous.close();
  try {
    const waits = [zero.allReduce(new Float32Array(4)), zero.recv(new Float32Array(4), 1)];
    const outcomes = waits.map((w) => w.then(() => "finished", (e: Error) => `${e.name}: ${e.message}`));
    await new Promise((r) => setTimeout(r, 100));
    const abortedAt = performance.now();
    canceller.abort("rank 2 failed");
    const [allReduce, recv] = await Promise.all(outcomes);
    const took = performance.now() - abortedAt;
    assert.equal(allReduce, "CommCancelledError: rank 0 in allReduce #1: cancelled: rank 2 failed");
    assert.equal(recv, "CommCancelledError: rank 0 in recv #1 from rank 1: cancelled: rank 2 failed");
    assert.ok(took < 1_000, `the waits ended ${took.toFixed(0)} ms after the abort (the timeout is 30 s)`);
    await assert.rejects(zero.broadcast(new Float32Array(4), 0), { name: "CommCancelledError", message: /cancelled: rank 2 failed/ });
  } finally {
    await Promise.all([closeTcpWorld(zero), closeTcpWorld(one)]);
  }
});
