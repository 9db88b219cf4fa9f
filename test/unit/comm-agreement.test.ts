// The agreement of one-way collectives (broadcast, reduce, gather, scatter) rides on their data:
// each member checks the descriptor of one ring neighbour, on a data frame where the collective
// sends one along that edge, else on a payload-free agreement frame (kernel/src/comm/agreement.ts).
// Checked here: both ends of every edge agree on which frame carries it, and on real worlds every
// member receives a frame from the neighbour it checks, with agreement frames only where no data
// flows (what the wire counters saw, not what the table says).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { agreementFrames } from "../../kernel/src/comm/agreement";
import { ALGORITHMS, OPCODES, type Descriptor } from "../../kernel/src/comm/descriptor";
import { ThreadWorld } from "./comm-harness";
import { ProcessWorld } from "./comm-process-world";

const CASES = [
  { op: "broadcast", algorithm: "recursive-doubling" },
  { op: "broadcast", algorithm: "ring" },
  { op: "reduce", algorithm: "recursive-doubling" },
  { op: "gather", algorithm: "ring" },
  { op: "scatter", algorithm: "ring" },
] as const;

function descriptor(op: string, algorithm: string, root: number): Descriptor {
  return {
    group: 0, call: 1, opcode: OPCODES.indexOf(op as never), count: 4, dtype: 0, root, redop: 0,
    algorithm: ALGORITHMS.indexOf(algorithm as never), epoch: 0, shape: 0,
  };
}

test("agreement frames: on every edge the sender sends one exactly when the receiver waits for one", () => {
  for (let n = 1; n <= 9; n++) {
    const members = Array.from({ length: n }, (_, r) => (r * 3) % 11); // world ranks in another order than group ranks
    for (const { op, algorithm } of CASES) {
      for (let root = 0; root < n; root++) {
        const d = descriptor(op, algorithm, root);
        const frames = members.map((w) => agreementFrames(d, members, w));
        for (let a = 0; a < n; a++) {
          for (let b = 0; b < n; b++) {
            const sends = frames[a]?.sendTo === members[b];
            const waits = frames[b]?.recvFrom === members[a];
            assert.equal(sends, waits, `${op} ${algorithm} n=${n} root ${root}: group rank ${a} -> ${b}`);
          }
        }
      }
    }
  }
  // direct collectives and two-way ops need none
  assert.equal(agreementFrames(descriptor("broadcast", "direct", 0), [0, 1, 2], 1), undefined);
  assert.equal(agreementFrames(descriptor("allReduce", "ring", 0), [0, 1, 2], 1), undefined);
});

/** The neighbour (world rank) whose descriptor group rank `at` checks: the one before it, the one after it for reduce. */
const checked = (op: string, at: number, n: number) => (op === "reduce" ? (at + 1) % n : (at + n - 1) % n);

for (const transport of ["shm", "tcp"] as const) {
  test(`${transport}: every member receives a frame from the neighbour it checks; agreement frames only where no data flows`, async () => {
    const n = 5;
    const world = transport === "shm" ? new ThreadWorld(n, { comm: { timeoutMs: 10_000 } }) : await ProcessWorld.start(n, { timeoutMs: 10_000 });
    try {
      for (const { op, algorithm } of CASES) {
        // shm: the channel algorithms (the world's default would be the direct paths, which need no frames)
        const options = { algorithm };
        for (const root of [0, 3]) {
          const x = new Float32Array(20).fill(1);
          const replies = (await world.values("collectiveTraffic", Array.from({ length: n }, () => ({ op, x, root, options })))) as {
            framesFrom: Record<string, number>; agreementSent: number; agreementReceived: number;
          }[];
          const what = `${op} ${algorithm} root ${root}`;
          let agreementFramesSent = 0;
          replies.forEach((r, at) => {
            const neighbour = checked(op, at, n);
            assert.ok((r.framesFrom[neighbour] ?? 0) >= 1, `${what}: rank ${at} received nothing from rank ${neighbour}: ${JSON.stringify(r)}`);
            const expected = agreementFrames(descriptor(op, algorithm, root), [0, 1, 2, 3, 4], at);
            assert.equal(r.agreementReceived, expected?.recvFrom === undefined ? 0 : 1, `${what}: rank ${at} agreement frames received`);
            assert.equal(r.agreementSent, expected?.sendTo === undefined ? 0 : 1, `${what}: rank ${at} agreement frames sent`);
            // a member that receives an agreement frame gets no data from that neighbour: the edge carries no data
            if (r.agreementReceived > 0) assert.equal(r.framesFrom[neighbour], 1, `${what}: rank ${at} got data from rank ${neighbour} too`);
            agreementFramesSent += r.agreementSent;
          });
          // fewer frames than a separate ring round every member (n a call) for the tree broadcast and reduce
          if (algorithm === "recursive-doubling") assert.ok(agreementFramesSent < n, `${what}: ${agreementFramesSent} agreement frames`);
          if (op === "broadcast" && algorithm === "ring") assert.equal(agreementFramesSent, 0, what);
        }
      }
    } finally {
      if (world instanceof ThreadWorld) await world.close();
      else world.close();
    }
  });
}

// Each rank names the rank two before it the root: in a binomial tree every rank then waits for data
// from its root and for the agreement frame of the rank before it, and none of them sends anything
// first. No frame can show the disagreement; tcp ranks find it by asking each other where they are
// once they have waited a while, shm ranks by reading each other's posted descriptors.
for (const transport of ["shm", "tcp"] as const) {
  test(`${transport}: ranks that disagree on the root and all wait for data fail with the mismatch, not the timeout`, async () => {
    const n = 4;
    const world = transport === "shm" ? new ThreadWorld(n, { comm: { timeoutMs: 8_000 } }) : await ProcessWorld.start(n, { timeoutMs: 8_000 });
    try {
      const options = { algorithm: "recursive-doubling" };
      const replies = await world.run("collective", Array.from({ length: n }, (_, r) => ({ op: "broadcast", x: new Float32Array(4), root: (r + 2) % n, options })));
      for (const r of replies) {
        assert.equal(r.ok, false, `rank ${r.rank} returned ${JSON.stringify(r.value)}`);
        assert.equal(r.error!.name, "CommMismatchError", `rank ${r.rank}: ${r.error!.name}: ${r.error!.message}`);
        assert.match(
          r.error!.message,
          /^mismatched collectives: rank 0 called broadcast #1 \(4 x float32, root 2, recursive-doubling\); rank 1 called broadcast #1 \(4 x float32, root 3, recursive-doubling\); rank 2 called broadcast #1 \(4 x float32, root 0, recursive-doubling\); rank 3 called broadcast #1 \(4 x float32, root 1, recursive-doubling\)$/,
        );
      }
    } finally {
      if (world instanceof ThreadWorld) await world.close();
      else world.close();
    }
  });
}

// A socket rank awaits its agreement frames late (kernel/src/comm/agreement-window.ts): a root's
// check is the frame of the member before it, sent when that member enters the call, so a root
// that waited for it inside the call could never run ahead of its leaves.
test("tcp: a broadcast root leaves the call before the member that checks it enters; its check passes when it settles", async () => {
  const world = await ProcessWorld.start(3, { timeoutMs: 8_000 });
  try {
    // tree broadcast from 0 on 3 ranks: rank 2 gets data from rank 0, and rank 0 checks rank 2 by its agreement frame
    assert.deepEqual(agreementFrames(descriptor("broadcast", "recursive-doubling", 0), [0, 1, 2], 0), { recvFrom: 2 });
    const values = await world.values("rootLeavesBeforeItsChecker", [{ checker: 2 }, { checker: 2 }, { checker: 2 }]);
    assert.deepEqual(values, [[[1, 1, 1, 1], "settled"], [[1, 1, 1, 1]], [[1, 1, 1, 1]]]);
  } finally {
    world.close();
  }
});

test("tcp: ranks that each name themselves the root may leave the call, and settling fails with the mismatch naming both calls", async () => {
  const world = await ProcessWorld.start(2, { timeoutMs: 8_000 });
  try {
    // comm-tcp-rank.ts settles after the scenario, as a kernel rank does after a cell
    const options = { algorithm: "recursive-doubling" };
    const replies = await world.run("collective", [0, 1].map((root) => ({ op: "broadcast", x: new Float32Array(4), root, options })));
    for (const r of replies) {
      assert.equal(r.ok, false, `rank ${r.rank} settled with ${JSON.stringify(r.value)}`);
      assert.equal(r.error!.name, "CommMismatchError", `rank ${r.rank}: ${r.error!.name}: ${r.error!.message}`);
      assert.equal(
        r.error!.message,
        "mismatched collectives: rank 0 called broadcast #1 (4 x float32, root 0, recursive-doubling); rank 1 called broadcast #1 (4 x float32, root 1, recursive-doubling)",
      );
    }
  } finally {
    world.close();
  }
});
