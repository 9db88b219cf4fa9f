// Groups and meshes, emulated links and spans, on a real shared-memory world.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import { ThreadWorld } from "./comm-harness";
import { FAN_OUT_BYTES, FAN_OUT_LINK, LINK_CASES } from "./comm-scenarios";
import { ProcessWorld } from "./comm-process-world";
import { checkLink, parseLink } from "../../kernel/src/comm/link";

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

test("--link reads bandwidth and latency in every accepted unit, the bounds included", () => {
  assert.deepEqual(parseLink("bandwidth=1Gbit/s,latency=2ms"), { bandwidth: 1.25e8, latency: 0.002 });
  assert.deepEqual(parseLink(" latency = 1.5e-3 "), { bandwidth: Infinity, latency: 0.0015 });
  assert.deepEqual(parseLink("bandwidth=1kbit,latency=10s"), { bandwidth: 125, latency: 10 });
  assert.deepEqual(parseLink("bandwidth=2MiB"), { bandwidth: 2 * 1024 * 1024, latency: 0 });
  assert.deepEqual(parseLink("bandwidth=10Tbit,latency=0"), { bandwidth: 1.25e12, latency: 0 });
});

test("bad --link input: an error naming the value, with the accepted forms", () => {
  const cases: Array<[string, RegExp]> = [
    ["bandwidth=0Gbit", /bandwidth "0Gbit" must be > 0/],
    ["bandwidth=-5MB", /bandwidth "-5MB" must be > 0/],
    ["latency=-2ms", /latency "-2ms" must be >= 0/],
    ["bandwidth=5parsec", /unknown bandwidth unit "parsec" in "bandwidth=5parsec"/],
    ["latency=3h", /unknown latency unit "h" in "latency=3h"/],
    ["latency=3ms/s", /latency "3ms\/s" is a time, not a rate/],
    ["bandwidth=1Gbit,latency=1ms,bandwidth=2Gbit", /bandwidth given twice \("bandwidth=2Gbit"\)/],
    ["latency=1ms,latency=2ms", /latency given twice/],
    ["latency=11s", /latency "11s" is above 10 s/],
    ["latency=20000ms", /latency "20000ms" is above 10 s/],
    ["bandwidth=100bit", /bandwidth "100bit" is below 1 kbit\/s/],
    ["bandwidth=0.5kbit", /bandwidth "0.5kbit" is below 1 kbit\/s/],
    ["bandwidth=20Tbit", /bandwidth "20Tbit" is above 10 Tbit\/s/],
    ["bandwidth=fast", /cannot read bandwidth "fast" as a number and unit/],
    ["bandwidth", /cannot read "bandwidth" \(expected key=value\)/],
    ["speed=1Gbit", /unknown key "speed"/],
    [",", /"," gives neither bandwidth nor latency/],
  ];
  for (const [spec, culprit] of cases) {
    assert.throws(() => parseLink(spec), (error: Error) => {
      assert.match(error.message, culprit, `--link ${spec}`);
      assert.match(error.message, /accepted: bandwidth=<number><unit> with unit bit, kbit, Mbit, Gbit, Tbit, B, kB, MB, GB, KiB, MiB or GiB .*latency=<number><unit> with unit s, ms or us/);
      return true;
    }, `--link ${spec} was accepted`);
  }
});

test("a link given in code (options.link) meets the same bounds, named by where it was given", () => {
  assert.throws(() => checkLink({ bandwidth: 0, latency: 0 }, "allReduce link"), /^RangeError: allReduce link: bandwidth 0 bytes\/s must be > 0$/);
  assert.throws(() => checkLink({ bandwidth: 1e9, latency: 60 }, "link"), /link: latency 60 s is above 10 s/);
  assert.throws(() => checkLink({ bandwidth: 10, latency: 0 }, "link"), /link: bandwidth 10 bytes\/s is below 1 kbit\/s/);
  assert.throws(() => checkLink({ bandwidth: 1e9, latency: NaN }, "link"), /link: latency NaN s must be >= 0/);
  assert.deepEqual(checkLink({ bandwidth: Infinity, latency: 0.001 }, "link"), { bandwidth: Infinity, latency: 0.001 });
});

/**
 * A rank's sends share one egress (its NIC): sending S to k peers at once takes L + k S / B, not
 * L + S / B. 100 kB to each of k = 1, 2, 3 peers at 4 Mbit/s + 20 ms: 220, 420, 620 ms.
 */
async function fanOutTimes(world: { values(name: string, args: unknown[]): Promise<unknown[]> }, where: string, scenario = "timedFanOut"): Promise<void> {
  for (const k of [1, 2, 3]) {
    const want = (FAN_OUT_LINK.latency + (k * FAN_OUT_BYTES) / FAN_OUT_LINK.bandwidth) * 1000;
    // the best of 2: a busy machine only ever adds time, the emulation must not
    let best = Infinity;
    for (let trial = 0; trial < 2; trial++) {
      const args = [0, 1, 2, 3].map(() => ({ peers: k, bytes: FAN_OUT_BYTES, link: FAN_OUT_LINK }));
      best = Math.min(best, ((await world.values(scenario, args)) as number[])[0]!);
    }
    assert.ok(Math.abs(best - want) <= 0.1 * want, `${where} ${scenario}: ${FAN_OUT_BYTES} B each between rank 0 and ${k} peers: measured ${best.toFixed(1)} ms, model ${want.toFixed(1)} ms`);
  }
}

test("shm: a rank sending to k peers at once shares its link's bandwidth among them (k = 1, 2, 3)", async () => {
  await fanOutTimes(world, "shm");
});

test("tcp: a rank sending to k peers at once shares its link's bandwidth among them (k = 1, 2, 3)", async () => {
  const processes = await ProcessWorld.start(4);
  try {
    await fanOutTimes(processes, "tcp");
  } finally {
    processes.close();
  }
});

test("shm: k ranks sending to one at once share its ingress (k = 1, 2, 3)", async () => {
  await fanOutTimes(world, "shm", "timedFanIn");
});

test("tcp: k ranks sending to one at once share its ingress (k = 1, 2, 3)", async () => {
  const processes = await ProcessWorld.start(4);
  try {
    await fanOutTimes(processes, "tcp", "timedFanIn");
  } finally {
    processes.close();
  }
});
