// Faults on a real shared-memory world: a rank that never joins, a world
// cancelled from the main thread, mismatched collectives, mismatched
// point-to-point lengths. Each must end every waiting rank with an error
// naming the ranks and calls at fault, never hang.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { ThreadWorld } from "./comm-harness";
import { ProcessWorld } from "./comm-process-world";
import type { WireStats } from "../../kernel/src/comm/wire-stats";

const x4 = (r: number) => new Float32Array([r, r, r, r]);

test("a rank that never joins ends the waiting rank within the timeout, naming the call and the rank", async () => {
  const world = new ThreadWorld(2, { comm: { timeoutMs: 500 } });
  try {
    const started = Date.now();
    const replies = await world.run("maybe", [{ op: "allReduce", x: x4(0) }, null]);
    const elapsed = Date.now() - started;
    assert.equal(replies[0].ok, false);
    assert.equal(replies[0].error!.name, "CommTimeoutError");
    assert.match(replies[0].error!.message, /^rank 0 waited 0\.[5-9] s in allReduce #1 for rank 1$/);
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
  } finally {
    await world.close();
  }
});

test("cancelling the world from the main thread wakes every blocked rank with the reason", async () => {
  const world = new ThreadWorld(3, { comm: { timeoutMs: 30_000 } });
  try {
    const pending = world.run("maybe", [{ op: "allReduce", x: x4(0) }, { op: "broadcast", x: x4(1), root: 2 }, null]);
    await new Promise((r) => setTimeout(r, 300));
    world.cancel("interrupted by the user");
    // woken by the cancel, not by their 30 s timeout (that would be a CommTimeoutError)
    const replies = await pending;
    assert.equal(replies[0].error!.name, "CommCancelledError");
    assert.equal(replies[0].error!.message, "rank 0 in allReduce #1: cancelled: interrupted by the user");
    assert.equal(replies[1].error!.message, "rank 1 in broadcast #1: cancelled: interrupted by the user");
  } finally {
    await world.close();
  }
});

test("allReduce on rank 0 against broadcast on rank 1 fails on both, naming both ranks and both calls", async () => {
  const world = new ThreadWorld(2, { comm: { timeoutMs: 10_000 } });
  try {
    const replies = await world.run("collective", [{ op: "allReduce", x: x4(0) }, { op: "broadcast", x: x4(1), root: 0 }]);
    for (const r of replies) {
      assert.equal(r.ok, false);
      assert.equal(r.error!.name, "CommMismatchError");
      assert.match(r.error!.message, /rank 0 called allReduce #1 \(4 x float32, op sum, direct\)/);
      assert.match(r.error!.message, /rank 1 called broadcast #1 \(4 x float32, root 0, direct\)/);
    }
  } finally {
    await world.close();
  }
});

test("allReduce with different lengths fails naming both lengths", async () => {
  const world = new ThreadWorld(3, { comm: { timeoutMs: 10_000 } });
  try {
    const xs = [new Float32Array(8), new Float32Array(8), new Float32Array(5)];
    const replies = await world.run("collective", xs.map((x) => ({ op: "allReduce", x, options: { algorithm: "ring" } })));
    assert.ok(replies.every((r) => !r.ok && r.error!.name === "CommMismatchError"), JSON.stringify(replies));
    // one message naming each rank's call, in rank order
    for (const r of replies) {
      assert.match(r.error!.message, /rank 0 called allReduce #1 \(8 x float32.*; rank 1 called allReduce #1 \(8 x float32.*; rank 2 called allReduce #1 \(5 x float32/);
    }
  } finally {
    await world.close();
  }
});

test("a recv whose length differs from the matching send fails naming both", async () => {
  const world = new ThreadWorld(2, { comm: { timeoutMs: 2_000 } });
  try {
    const replies = await world.run("pointToPoint", [
      { to: 1, from: 1, x: new Float32Array(10), into: new Float32Array(10) },
      { to: 0, from: 0, x: new Float32Array(10), into: new Float32Array(7) },
    ]);
    assert.equal(replies[1].ok, false);
    assert.match(replies[1].error!.message, /rank 1 recv #1 from rank 0 expected 7 x .* but rank 0 sent 10 x/);
  } finally {
    await world.close();
  }
});

for (const transport of ["shm", "tcp"] as const) {
  test(`several isends in flight to one peer arrive whole and in order (${transport}; on shm each is larger than the ring)`, async () => {
    const world = transport === "shm" ? new ThreadWorld(2, { userRingBytes: 4096 }) : await ProcessWorld.start(2);
    try {
      // 3 messages of 80,000 bytes each way: each needs many passes through a 4 KiB ring.
      const message = (from: number, k: number) => Float64Array.from({ length: 10_000 }, (_, i) => from * 1e6 + k * 1e5 + i);
      const args = [0, 1].map((rank) => ({
        peer: 1 - rank,
        xs: [0, 1, 2].map((k) => message(rank, k)),
        intos: [0, 1, 2].map(() => new Float64Array(10_000)),
      }));
      const got = (await world.values("manyInFlight", args)) as Float64Array[][];
      for (const rank of [0, 1]) {
        for (const k of [0, 1, 2]) assert.deepEqual(got[rank]![k], message(1 - rank, k), `rank ${rank}'s message ${k} from rank ${1 - rank}`);
      }
    } finally {
      await world.close();
    }
  });
}

test("isend and irecv posted together exchange messages larger than the ring", async () => {
  const world = new ThreadWorld(2, { userRingBytes: 4096 });
  try {
    const big = (r: number) => Float64Array.from({ length: 10_000 }, (_, i) => i * 10 + r);
    const got = (await world.values("pointToPoint", [
      { to: 1, from: 1, x: big(0), into: new Float64Array(10_000) },
      { to: 0, from: 0, x: big(1), into: new Float64Array(10_000) },
    ])) as Float64Array[];
    assert.deepEqual(got[0], big(1));
    assert.deepEqual(got[1], big(0));
  } finally {
    await world.close();
  }
});

test("bad arguments are refused synchronously with the argument named", async () => {
  const world = new ThreadWorld(2);
  try {
    const replies = await world.run("collective", [
      { op: "broadcast", x: x4(0), root: 5 },
      { op: "allReduce", x: x4(1), options: { op: "median" } },
    ]);
    assert.match(replies[0].error!.message, /world\.broadcast root: rank must be an integer in \[0, 1\], got 5/);
    assert.match(replies[1].error!.message, /op must be one of sum, mean, max, min, product; got "median"/);
  } finally {
    await world.close();
  }
});

// Ranks that each name themselves the root receive nothing in a broadcast: without an agreement
// step each would return its own array as if all were well (the next call then trips on the frames
// left behind). Shared memory over a channel algorithm and tcp must both refuse it: the call fails
// on shm; on tcp it may return (roots check their agreement frames late) and the rank's settle, as
// at the end of a cell, fails (comm-tcp-rank.ts settles after every scenario).
for (const transport of ["shm", "tcp"] as const) {
  test(`${transport}: a broadcast in which each rank names itself the root fails on every rank, naming both roots`, async () => {
    const world = transport === "shm" ? new ThreadWorld(3, { comm: { timeoutMs: 5_000 } }) : await ProcessWorld.start(3, { timeoutMs: 5_000 });
    try {
      const options = transport === "shm" ? { algorithm: "recursive-doubling" } : {};
      const replies = await world.run("collective", [0, 1, 2].map((r) => ({ op: "broadcast", x: x4(r), root: r, options })));
      for (const r of replies) {
        assert.equal(r.ok, false, `rank ${r.rank} returned ${JSON.stringify(r.value)}`);
        assert.equal(r.error!.name, "CommMismatchError", r.error!.message);
        // every rank's call, each naming itself the root
        assert.match(r.error!.message, /^mismatched collectives: rank 0 called broadcast #1 \(4 x float32, root 0, recursive-doubling\); rank 1 called broadcast #1 \(4 x float32, root 1, recursive-doubling\); rank 2 called broadcast #1 \(4 x float32, root 2, recursive-doubling\)$/);
      }
      // the agreement frames are counted apart from the broadcast's own traffic; they run only on the
      // ring edges the tree's data does not: root 1 sends to rank 2 (the next), so 1 -> 2 needs none;
      // rank 2 -> rank 0 and rank 0 -> root 1 carry no data and take one payload-free frame each
      if (transport === "tcp") {
        const fresh = await ProcessWorld.start(3, { timeoutMs: 5_000 });
        try {
          await fresh.values("collective", [0, 1, 2].map(() => ({ op: "broadcast", x: x4(7), root: 1 })));
          const stats = (await fresh.values("wireStatsFresh", [])) as WireStats[];
          const sentBytesReceived = [[1, 0, 1], [0, 0, 1], [1, 0, 0]];
          for (const s of stats) {
            const agreement = s.byOp.agreement ?? { messagesSent: 0, bytesSent: 0, messagesReceived: 0 };
            assert.deepEqual([agreement.messagesSent, agreement.bytesSent, agreement.messagesReceived], sentBytesReceived[s.rank], `rank ${s.rank}`);
            assert.equal(s.framingBytesSent, 48 * s.messagesSent);
          }
        } finally {
          fresh.close();
        }
      }
    } finally {
      await world.close();
    }
  });
}
