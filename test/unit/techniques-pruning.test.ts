// Gradual magnitude pruning (Zhu & Gupta 2017): the cubic schedule, masks measured from the
// weights themselves (zeros counted after pruning and after optimizer steps), and the bytes the
// transport sent when only the surviving weights' gradients are exchanged, on a real world of 2
// rank threads; bad targets.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ThreadWorld } from "./comm-harness";
import { seededRandom, tokenBatch } from "../../kernel/src/data";
import { createTinyGpt } from "../../kernel/src/models";
import { MagnitudePruning, Sgd, countZeros, cubicSparsity, layerSparsities, localGradients, validatePruningOptions } from "../../kernel/src/techniques";
import { createMlp } from "../../kernel/src/models";

const tokens = Int32Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 20);
const newGpt = () => createTinyGpt({ vocabSize: 20, blockSize: 8, nEmbd: 16, nHead: 2, nLayer: 2, seed: 1 });

let world: ThreadWorld;
before(() => {
  world = new ThreadWorld(2, { workerFile: path.join(__dirname, "pruning-worker.ts") });
});
after(async () => {
  await world.close();
});

test("the cubic schedule runs from s_i at t0 to s_f at t0 + n dt, fastest first", () => {
  const o = validatePruningOptions({ targetSparsity: 0.8, initialSparsity: 0.1, startStep: 20, pruningSteps: 4, frequency: 5 });
  assert.equal(cubicSparsity(19, o), 0);
  assert.ok(Math.abs(cubicSparsity(20, o) - 0.1) < 1e-12);
  assert.ok(Math.abs(cubicSparsity(30, o) - (0.8 - 0.7 / 8)) < 1e-12, "halfway: s_f + (s_i - s_f) / 8");
  assert.equal(cubicSparsity(40, o), 0.8);
  assert.equal(cubicSparsity(1000, o), 0.8);
  const steps = [20, 25, 30, 35, 40].map((t) => cubicSparsity(t, o));
  const jumps = steps.slice(1).map((s, i) => s - steps[i]!);
  assert.ok(jumps.every((d, i) => d > 0 && (i === 0 || d < jumps[i - 1]!)), `increments ${jumps} should shrink`);
});

test("each update zeroes round(s_t x size) smallest weights of every matrix, counted in the weights; SGD and Adam keep them zero", async () => {
  const gpt = newGpt();
  const pruning = new MagnitudePruning(gpt.params, { targetSparsity: 0.75, startStep: 0, pruningSteps: 3, frequency: 2 });
  assert.ok(pruning.prunable.length > 0 && pruning.prunable.every((i) => gpt.params[i]!.shape.length >= 2));
  let previousMasks = pruning.masks.map((m) => m.slice());
  const sgd = new Sgd(gpt.params, 0.1);
  for (let step = 0; step <= 6; step++) {
    const scheduled = await pruning.update(step);
    assert.equal(scheduled !== undefined, step % 2 === 0, `step ${step}`);
    for (const i of pruning.prunable) {
      const zeros = Array.from(await gpt.params[i]!.data()).filter((v) => v === 0).length;
      assert.equal(zeros, Math.round(pruning.scheduled * gpt.params[i]!.size), `step ${step}, parameter ${i}: ${zeros} zeros at s_t = ${pruning.scheduled}`);
      previousMasks[i]!.forEach((m, j) => assert.ok(m === 1 || pruning.masks[i]![j] === 0, `parameter ${i} entry ${j} came back`));
    }
    previousMasks = pruning.masks.map((m) => m.slice());
    const batch = tokenBatch(tokens, 4, 8, seededRandom(step));
    sgd.step(pruning.maskGradients((await localGradients(gpt, batch)).grads));
    tf.dispose([batch.x, batch.y]);
  }
  // the kept weights are the largest of the original matrix (after SGD moved them a little)
  const measured = await countZeros(gpt.params, pruning.prunable);
  assert.equal(measured.zeros, pruning.prunable.reduce((n, i) => n + Math.round(0.75 * gpt.params[i]!.size), 0));
  const notPruned = gpt.params.map((_, i) => i).filter((i) => !pruning.prunable.includes(i));
  assert.ok(notPruned.length > 0 && notPruned.every((i) => pruning.masks[i]!.every((m) => m === 1)), "biases and gains are not pruned");
  tf.dispose(gpt.params);
});

test("with Adam, whose moments move a weight after its gradient is masked, applyMasks keeps the pruned weights at zero", async () => {
  const gpt = newGpt();
  // dense Adam steps first (moments build up), then one pruning update to 0.75 at step 2, then more steps
  const pruning = new MagnitudePruning(gpt.params, { targetSparsity: 0.75, startStep: 2, pruningSteps: 0 });
  const adam = tf.train.adam(0.01);
  for (let step = 0; step < 5; step++) {
    await pruning.update(step);
    const batch = tokenBatch(tokens, 4, 8, seededRandom(50 + step));
    const g = pruning.maskGradients((await localGradients(gpt, batch)).grads);
    const named = gpt.params.map((p, i) => ({ name: p.name, tensor: tf.tensor(g[i]!, p.shape) }));
    adam.applyGradients(named);
    tf.dispose([batch.x, batch.y, ...named.map((n) => n.tensor)]);
    pruning.applyMasks();
  }
  const expected = pruning.prunable.reduce((n, i) => n + Math.round(0.75 * gpt.params[i]!.size), 0);
  assert.equal((await countZeros(gpt.params, pruning.prunable)).zeros, expected, "pruned weights moved under Adam");
  tf.dispose(gpt.params);
});

test("Erdos-Renyi allocation: density proportional to (fan_in + fan_out) / (fan_in fan_out), the uniform total of non-zeros, overfull layers dense", () => {
  const shapes = [[16, 128], [128, 128], [128, 10]];
  const sizes = [2048, 16384, 1280];
  const total = 19712;
  // 90%: no layer overfull, so density_l = scale (in + out) / (in out) with scale = alive / sum of fans = 1971.2 / 538
  const at90 = layerSparsities(shapes, 0.9, "erdos-renyi");
  const scale = (0.1 * total) / (144 + 256 + 138);
  [144, 256, 138].forEach((fan, l) => assert.ok(Math.abs(1 - at90[l]! - (scale * fan) / sizes[l]!) < 1e-12, `layer ${l}: density ${1 - at90[l]!}`));
  const alive = (s: number[]) => s.reduce((sum, sparsity, l) => sum + (1 - sparsity) * sizes[l]!, 0);
  assert.ok(Math.abs(alive(at90) - 0.1 * total) < 1e-6, `alive ${alive(at90)}, uniform keeps ${0.1 * total}`);
  assert.ok(at90[0]! < at90[1]! && at90[2]! < at90[1]!, `the small first and last layers keep more: ${at90}`);
  // 50%: the first and last layers would pass density 1, so they stay dense and the middle one takes the rest
  const at50 = layerSparsities(shapes, 0.5, "erdos-renyi");
  assert.deepEqual([at50[0], at50[2]], [0, 0]);
  assert.ok(Math.abs((1 - at50[1]!) * 16384 - (0.5 * total - 2048 - 1280)) < 1e-6, `middle layer density ${1 - at50[1]!}`);
  assert.deepEqual(layerSparsities(shapes, 0.75, "uniform"), [0.75, 0.75, 0.75]);
});

test("MagnitudePruning with Erdos-Renyi allocation: each matrix follows the cubic schedule to its own s_f,l, counted in the weights", async () => {
  const mlp = createMlp({ sizes: [16, 128, 128, 10], seed: 3 });
  const options = { targetSparsity: 0.9, initialSparsity: 0.2, startStep: 0, pruningSteps: 3, frequency: 1, allocation: "erdos-renyi" as const };
  const pruning = new MagnitudePruning(mlp.params, options);
  const shares = layerSparsities(pruning.prunable.map((i) => mlp.params[i]!.shape), 0.9, "erdos-renyi");
  for (let step = 0; step <= 3; step++) {
    const st = await pruning.update(step);
    assert.equal(st, cubicSparsity(step, validatePruningOptions(options)));
    for (const [k, i] of pruning.prunable.entries()) {
      const zeros = (await countZeros(mlp.params, [i])).zeros;
      const want = Math.round(((st! * shares[k]!) / 0.9) * mlp.params[i]!.size);
      assert.equal(zeros, want, `step ${step}, matrix ${i}: ${zeros} zeros, s_t x s_f,l / s_f wants ${want}`);
    }
  }
  const end = await countZeros(mlp.params, pruning.prunable);
  assert.ok(Math.abs(end.zeros / end.total - 0.9) < 0.001, `overall sparsity ${end.zeros / end.total}`);
  assert.throws(() => new MagnitudePruning(mlp.params, { targetSparsity: 0.5, allocation: "global" as never }), (e: Error) => e instanceof TypeError && e.message.includes('pruning.allocation must be one of "uniform", "erdos-renyi", got "global"'));
  tf.dispose(mlp.params);
});

test("2 rank threads: the transport sends 4 bytes a surviving weight, and the synced gradients are the dense mean masked", async () => {
  const rows: string[] = [];
  let denseBytes = 0;
  for (const sparsity of [0, 0.5, 0.75, 0.9]) {
    const replies = (await world.values("prunedSync", [sparsity, sparsity])) as { bytesSent: number; allReduceBytes: number; alive: number; zeros: number; prunableTotal: number; maxDifference: number; aliveWhereMasked: number }[];
    for (const [r, reply] of replies.entries()) {
      // On 2 ranks every allReduce algorithm sends the payload once per rank.
      assert.equal(reply.allReduceBytes, 4 * reply.alive, `s = ${sparsity}, rank ${r}: the transport sent ${reply.allReduceBytes} B for ${reply.alive} surviving weights`);
      assert.equal(reply.bytesSent, reply.allReduceBytes, `s = ${sparsity}, rank ${r}: bytes outside the allReduce`);
      assert.ok(Math.abs(reply.zeros / reply.prunableTotal - sparsity) < 0.002, `s = ${sparsity}: measured sparsity ${reply.zeros / reply.prunableTotal}`);
      assert.ok(reply.maxDifference <= 1e-6, `s = ${sparsity}, rank ${r}: synced gradients differ from the dense mean by ${reply.maxDifference}`);
      assert.equal(reply.aliveWhereMasked, 0);
    }
    if (sparsity === 0) denseBytes = replies[0]!.bytesSent;
    rows.push(`s = ${sparsity}: ${replies[0]!.bytesSent} B (${(replies[0]!.bytesSent / denseBytes).toFixed(3)} of dense)`);
  }
  console.log(rows.join("; "));
});

test("a pruning target outside [0, 1) fails naming the value", () => {
  const params = newGpt().params;
  for (const bad of [1, 1.5, -0.1]) {
    assert.throws(() => new MagnitudePruning(params, { targetSparsity: bad }), (e: Error) => e instanceof RangeError && e.message.includes("pruning.targetSparsity must be in [0, 1)") && e.message.includes(`got ${bad}`));
  }
  assert.throws(() => new MagnitudePruning(params, {}), /pruning.targetSparsity is required/);
  assert.throws(() => new MagnitudePruning(params, { targetSparsity: 0.5, initialSparsity: 0.6 }), /pruning.initialSparsity must be in \[0, 0.5\], got 0.6/);
  assert.throws(() => new MagnitudePruning(params, { targetSparsity: 0.5, sparsity: 0.5 } as object), /pruning.sparsity is not an option/);
  tf.dispose(params);
});
