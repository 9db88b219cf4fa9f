// Groups and meshes, emulated links and spans, on a real shared-memory world.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { ThreadWorld } from "./comm-harness";
import { LINK_CASES } from "./comm-scenarios";

let world: ThreadWorld;
before(() => { world = new ThreadWorld(4, { comm: { timeoutMs: 10_000, spans: true } }); });
after(() => world.close());

test("mesh [2, 2] of dp x tp: each axis reduces over its own line of ranks", async () => {
  const xs = [0, 1, 2, 3].map((r) => new Float32Array([10 ** r]));
  const out = (await world.values("mesh", xs.map((x) => ({ shape: [2, 2], names: ["dp", "tp"], x })))) as any[];
  // rank = dp * 2 + tp; tp groups {0,1},{2,3}; dp groups {0,2},{1,3}
  assert.deepEqual(out.map((o) => o.coords), [{ dp: 0, tp: 0 }, { dp: 0, tp: 1 }, { dp: 1, tp: 0 }, { dp: 1, tp: 1 }]);
  assert.deepEqual(out.map((o) => o.tp[0]), [11, 11, 1100, 1100]);
  assert.deepEqual(out.map((o) => o.dp[0]), [101, 1010, 101, 1010]);
});

test("a mesh whose degrees do not multiply to the world size is refused naming each degree", async () => {
  const replies = await world.run("mesh", [0, 1, 2, 3].map(() => ({ shape: [2, 3], names: ["dp", "tp"], x: new Float32Array(1) })));
  for (const r of replies) assert.equal(r.error!.message, "mesh: dp=2 * tp=3 = 6, but the communicator has 4 ranks");
});

test("an emulated link makes a transfer take latency + bytes / bandwidth, within 10%", async () => {
  const pair = new ThreadWorld(2, { comm: { timeoutMs: 10_000 } });
  try {
    for (const c of LINK_CASES) {
      const want = (c.link.latency + c.bytes / c.link.bandwidth) * 1000;
      // the best of 3: a busy machine only ever adds time (descheduled threads), the emulation must not
      let best = Infinity;
      for (let trial = 0; trial < 3; trial++) best = Math.min(best, ((await pair.values("timedTransfer", [c, c])) as number[])[0]);
      assert.ok(Math.abs(best - want) <= 0.1 * want, `${c.bytes} B: measured ${best.toFixed(2)} ms, model ${want.toFixed(2)} ms`);
    }
  } finally {
    await pair.close();
  }
});

test("every collective reports one span with op, bytes, algorithm and timestamps", async () => {
  const x = new Float32Array(1000);
  const spans = (await world.values("spans", [0, 1, 2, 3].map(() => ({ x })))) as any[][];
  for (const rankSpans of spans) {
    assert.deepEqual(rankSpans.map((s) => [s.op, s.bytes, s.algorithm, s.group]), [
      ["allReduce", 4000, "direct", "world"],
      ["broadcast", 4000, "direct", "world"],
    ]);
    for (const s of rankSpans) assert.ok(s.end >= s.start && s.start > 1.6e15, JSON.stringify(s));
  }
});
