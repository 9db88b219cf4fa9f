// The tcp world of process ranks, as the cluster forms, cancels and closes
// it: both ranks of a real 2-rank world (real rendezvous, real Unix
// sockets) in this process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTcpKernelWorld, joinCommWorld, type JoinedWorld } from "../../kernel/src/cluster/comm-world";

// A cancelled call's own wait keeps running until this timeout (the transport's watchdog): kept short.
async function twoRanks(timeoutMs = 3000): Promise<JoinedWorld[]> {
  const world = await createTcpKernelWorld(2);
  try {
    return await Promise.all([0, 1].map((rank) => joinCommWorld(world.address, { rank, size: 2, timeoutMs })));
  } finally {
    world.formed();
  }
}

test("cancelling a rank's tcp world wakes its collective at once with the reason, and later calls fail at once", async () => {
  const [zero, one] = await twoRanks();
  try {
    const sum = await Promise.all([zero!, one!].map((w) => w.comm.allReduce(new Float32Array([w.comm.rank + 1]))));
    assert.deepEqual(sum.map((x) => Array.from(x)), [[3], [3]]);
    // Rank 1 never joins this barrier: rank 0 waits until cancelled.
    const waiting = zero!.comm.barrier();
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    zero!.cancel("interrupted by the user");
    await assert.rejects(waiting, { name: "CommCancelledError", message: "rank 0 in barrier #2: cancelled: interrupted by the user" });
    assert.ok(Date.now() - started < 100, `woke after ${Date.now() - started} ms`);
    await assert.rejects(zero!.comm.allReduce(new Float32Array(1)), { name: "CommCancelledError" });
  } finally {
    zero!.close();
    one!.close();
  }
});

test("closing a rank's world is seen by its peer as a lost peer, not a hang", async () => {
  const [zero, one] = await twoRanks();
  const waiting = one!.comm.barrier();
  zero!.close();
  await assert.rejects(waiting, { name: "PeerLostError" });
  one!.close();
});

test("a rank whose peer never comes fails to join after the timeout, naming itself", async () => {
  const world = await createTcpKernelWorld(2);
  const started = Date.now();
  await assert.rejects(joinCommWorld(world.address, { rank: 0, size: 2, timeoutMs: 300, joinTimeoutMs: 300 }), /rank 0 could not join the group's world within 0\.3 s/);
  assert.ok(Date.now() - started < 2000);
  world.formed();
});

test("ending the kernel's part of forming the world ends a join still waiting at the rendezvous", async () => {
  const world = await createTcpKernelWorld(2);
  const joining = joinCommWorld(world.address, { rank: 0, size: 2, timeoutMs: 3000 });
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  world.formed();
  await assert.rejects(joining, /rendezvous closed without a table/);
  assert.ok(Date.now() - started < 1000);
});
