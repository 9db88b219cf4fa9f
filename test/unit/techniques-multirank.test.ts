// The asynchronous and decentralized techniques on a real world of 4 rank
// threads (shared-memory communicator, as in a %%distributed cell), each
// checked against an independent reference or an observer of its messages.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { ThreadWorld } from "./comm-harness";

const RANKS = 4;
let world: ThreadWorld;

before(() => {
  world = new ThreadWorld(RANKS, { workerFile: path.join(__dirname, "techniques-worker.ts") });
});
after(async () => {
  await world.close();
});

test("gossip on a 4-ring keeps the mean and contracts the consensus distance by lambda_2^2 = 1/9 a round", async () => {
  // W = 1/3 on {i-1, i, i+1}: eigenvalues 1/3 + 2/3 cos(2 pi k / 4) = 1, 1/3, -1/3, 1/3, so every
  // component off the mean shrinks by exactly 1/3 a round and the squared distance by 1/9.
  const [ring] = (await world.values("gossipRounds", Array(RANKS).fill({ rounds: 5, members: 4 }))) as { distances: number[]; meanDrift: number }[];
  const ratios = ring!.distances.slice(1).map((d, k) => d / ring!.distances[k]!);
  for (const ratio of ratios) assert.ok(Math.abs(ratio * 9 - 1) < 1e-3, `distance ratios ${ratios}, expected 1/9 each`);
  assert.ok(ring!.meanDrift < 1e-6, `the ranks' mean drifted by ${ring!.meanDrift}`);
  // On 3 ranks every rank is every other's neighbour: W is all 1/3 and one round reaches consensus.
  const replies = (await world.values("gossipRounds", Array(RANKS).fill({ rounds: 1, members: 3 }))) as ({ distances: number[] } | null)[];
  const [before3, after3] = replies[0]!.distances;
  assert.equal(replies[3], null, "rank 3 is outside the 3-ring");
  assert.ok(after3! < 1e-12 * before3!, `3-ring after one round: ${before3} -> ${after3}`);
});

interface PsReply { releases: number[]; reportMax: number; updates: number; fromPushes: number; acrossRanks: number }
const ps = async (staleness: number, steps: number) =>
  (await world.values("parameterServer", Array(RANKS).fill({ staleness, steps, slowMs: 25 }))) as PsReply[];

test("parameter server: the staleness seen on the wire never exceeds s, and a slow worker pushes the others to it", async () => {
  for (const s of [0, 2]) {
    const [server, ...workers] = await ps(s, 8);
    const seen = Math.max(...server!.releases);
    assert.ok(seen <= s, `s = ${s}: a worker was released ${seen} steps ahead of the slowest (releases ${server!.releases})`);
    assert.equal(seen, s, `s = ${s}: with rank 3 slowed 25 ms a step the fast workers should reach the bound`);
    assert.equal(server!.reportMax, seen, "the report's max staleness is what the wire showed");
    assert.equal(server!.releases.length, 3 * 8, "one release per step of each of 3 workers");
    assert.equal(server!.updates, 3 * 8);
    assert.ok(server!.fromPushes < 1e-5, `final parameters differ from w0 - lr * sum(pushed gradients) by ${server!.fromPushes}`);
    for (const w of workers) assert.equal(w.acrossRanks, 0, "every rank ends with the server's parameters");
  }
  // The observer can see staleness beyond a bound: without one the fast workers run far ahead.
  const [unbounded] = await ps(Infinity, 8);
  assert.ok(Math.max(...unbounded!.releases) >= 3, `s = Infinity: releases ${unbounded!.releases}`);
});

interface LocalReply { difference: number; moved: number; allReduces: number }
const local = async (arg: { innerSteps: number; outerLr: number; outerMomentum: number; steps: number }) =>
  (await world.values("localSgd", Array(RANKS).fill(arg))) as LocalReply[];

test("local SGD with H = 1, outer lr 1, no momentum is synchronous data-parallel SGD", async () => {
  for (const r of await local({ innerSteps: 1, outerLr: 1, outerMomentum: 0, steps: 6 })) {
    assert.ok(r.moved > 1e-3, `training moved the parameters by only ${r.moved}`);
    assert.ok(r.difference < 1e-6, `localSgd(H = 1) vs DataParallel: max |difference| ${r.difference}`);
    assert.equal(r.allReduces, 6, "one allReduce a step (after the initial broadcast)");
  }
});

test("DiLoCo (H = 4, Nesterov 0.7 / 0.9) matches the outer step written out, with one allReduce per H steps", async () => {
  for (const r of await local({ innerSteps: 4, outerLr: 0.7, outerMomentum: 0.9, steps: 12 })) {
    assert.ok(r.difference < 1e-5, `localSgd vs the written-out DiLoCo: max |difference| ${r.difference}`);
    assert.equal(r.allReduces, 12 / 4);
  }
});

interface StragglerReply { arrivals: { peer: number; step: number; open: boolean }[]; dropped: number; msPerSample: number[]; measuredStepMs: number }
const stragglers = async (backups: number) =>
  (await world.values("stragglers", Array(RANKS).fill({ policy: "backup", backups, slowFactor: 8 })))[0] as StragglerReply;

test("backup workers: with b = 1 every gradient of the slowest rank arrives after its step closed, and is dropped", async () => {
  const withBackup = await stragglers(1);
  const fast = withBackup.msPerSample.slice(0, 3);
  assert.ok(withBackup.msPerSample[3]! > 3 * Math.max(...fast), `calibrated ms per sample ${withBackup.msPerSample}`);
  const slow = withBackup.arrivals.filter((a) => a.peer === 3);
  assert.ok(slow.length >= 1, "rank 3 sent gradients");
  assert.deepEqual(slow.filter((a) => a.open), [], `rank 3's gradients that arrived while their step was open: ${JSON.stringify(slow)}`);
  assert.equal(withBackup.dropped, withBackup.arrivals.filter((a) => !a.open).length, "dropped = gradients that arrived late");
  // Without a backup the step waits for rank 3: its gradients all arrive in time and the step is slower.
  const without = await stragglers(0);
  // (Both runs end the same way: the workers waiting after the last step compute one gradient too many, drained and dropped.)
  assert.ok(without.arrivals.filter((a) => a.peer === 3 && a.step < 6).every((a) => a.open), JSON.stringify(without.arrivals));
  assert.equal(without.dropped, without.arrivals.filter((a) => !a.open).length);
  assert.equal(without.dropped, 3, "only the 3 gradients of the step after the last are dropped");
  assert.ok(withBackup.measuredStepMs < without.measuredStepMs, `step ${withBackup.measuredStepMs} ms with a backup, ${without.measuredStepMs} ms without`);
});

test("large batch: the learning rate warms up linearly to k * baseLr and the steps equal one-rank SGD on the union batch", async () => {
  const replies = (await world.values("largeBatch", Array(RANKS).fill({ steps: 6, warmupSteps: 4 }))) as { lrs: number[]; schedule: number[]; difference: number }[];
  // k = 4 ranks x 8 / 8 = 4: 0.05, 0.0875, 0.125, 0.1625, then 0.2
  assert.deepEqual(replies[0]!.schedule.map((x) => +x.toFixed(6)), [0.05, 0.0875, 0.125, 0.1625, 0.2, 0.2]);
  for (const r of replies) r.lrs.forEach((lr, t) => assert.ok(Math.abs(lr - r.schedule[t]!) < 1e-12, `step ${t}: lr ${lr}, expected ${r.schedule[t]}`));
  assert.ok(replies[0]!.difference < 1e-5, `4 ranks x 8 vs 1 rank x 32 with the same schedule: max |difference| ${replies[0]!.difference}`);
});
