import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { StalenessClock } from "../../kernel/src/techniques/parameter-server-clock";
import { nesterovOuterStep } from "../../kernel/src/techniques/local-sgd";
import { ringMixingMatrix, ringNeighbours } from "../../kernel/src/techniques/gossip";
import { LAMB_DEFAULTS, lambLayerStep, lambTrustRatio } from "../../kernel/src/techniques/lamb";
import { scaledLr } from "../../kernel/src/techniques/large-batch";
import { equalBatches, predictedStepMs, proportionalBatches } from "../../kernel/src/techniques/stragglers-policy";

test("LAMB trust ratio is ||w|| / ||r||, and 1 when either norm is zero", () => {
  assert.equal(lambTrustRatio(3, 1.5), 2);
  assert.equal(lambTrustRatio(0, 2), 1);
  assert.equal(lambTrustRatio(2, 0), 1);
});

test("a LAMB step moves each layer by lr * ||w||, whatever the gradient's scale", () => {
  for (const scale of [1e-4, 1, 1e4]) {
    const w = Float32Array.from([3, 4]); // ||w|| = 5
    const g = Float32Array.from([1 * scale, -2 * scale]);
    const before = Float32Array.from(w);
    const trust = lambLayerStep(w, g, new Float32Array(2), new Float32Array(2), 1, 0.1, LAMB_DEFAULTS);
    const moved = Math.hypot(w[0]! - before[0]!, w[1]! - before[1]!);
    assert.ok(Math.abs(moved - 0.1 * 5) < 1e-5, `scale ${scale}: moved ${moved}, expected 0.5`);
    // At t = 1 Adam's direction is g / (|g| + eps): sign(g) per element once |g| >> eps, so ||r|| = sqrt(2).
    if (scale >= 1) assert.ok(Math.abs(trust - 5 / Math.SQRT2) < 1e-3, `scale ${scale}: trust ${trust}`);
  }
});

test("the outer Nesterov step matches PyTorch SGD(nesterov=True) over two steps", () => {
  const theta = Float32Array.from([1, -2]);
  const v = new Float32Array(2);
  const lr = 0.7;
  const mu = 0.9;
  const d1 = Float32Array.from([0.5, 0.25]);
  nesterovOuterStep(theta, v, d1, lr, mu);
  // v1 = d1; theta1 = theta0 - lr * (d1 + mu * v1) = theta0 - lr * 1.9 * d1
  assert.ok(Math.abs(theta[0]! - (1 - 0.7 * 1.9 * 0.5)) < 1e-6);
  assert.ok(Math.abs(v[1]! - 0.25) < 1e-7);
  const d2 = Float32Array.from([-1, 0]);
  nesterovOuterStep(theta, v, d2, lr, mu);
  // v2 = 0.9 * 0.5 - 1 = -0.55; theta2 = theta1 - 0.7 * (-1 + 0.9 * -0.55)
  assert.ok(Math.abs(v[0]! - -0.55) < 1e-6);
  assert.ok(Math.abs(theta[0]! - (1 - 0.7 * 1.9 * 0.5 - 0.7 * (-1 + 0.9 * -0.55))) < 1e-6);
});

test("with H = 1, outer lr 1 and momentum 0 the outer step is plain SGD on the mean delta", () => {
  const theta = Float32Array.from([2, 3]);
  nesterovOuterStep(theta, new Float32Array(2), Float32Array.from([0.1, -0.2]), 1, 0);
  assert.deepEqual(Array.from(theta), [Math.fround(2 - 0.1), Math.fround(3 + 0.2)]);
});

test("the ring mixing matrix is symmetric and doubly stochastic, nonzero only on neighbours", () => {
  for (let n = 1; n <= 9; n++) {
    const W = ringMixingMatrix(n);
    for (let i = 0; i < n; i++) {
      const rowSum = W[i]!.reduce((a, b) => a + b, 0);
      const colSum = W.reduce((a, row) => a + row[i]!, 0);
      assert.ok(Math.abs(rowSum - 1) < 1e-12 && Math.abs(colSum - 1) < 1e-12, `n=${n} row/col ${i}: ${rowSum} ${colSum}`);
      for (let j = 0; j < n; j++) {
        assert.equal(W[i]![j], W[j]![i], `n=${n}: W not symmetric at ${i},${j}`);
        const near = i === j || ringNeighbours(i, n).includes(j);
        assert.equal(W[i]![j]! > 0, near, `n=${n}: W[${i}][${j}] = ${W[i]![j]}`);
      }
    }
  }
  assert.deepEqual(ringNeighbours(0, 4), [3, 1]);
  assert.deepEqual(ringNeighbours(1, 2), [0]);
  assert.deepEqual(ringMixingMatrix(3)[0], [1 / 3, 1 / 3, 1 / 3]);
});

test("the staleness clock: s = 0 releases a worker only when every worker has caught up", () => {
  const clock = new StalenessClock(3, 0);
  assert.deepEqual(clock.release().map((r) => r.worker), [0, 1, 2]);
  clock.push(0, false);
  clock.push(1, false);
  assert.deepEqual(clock.release(), [], "workers 0 and 1 wait for worker 2");
  clock.push(2, false);
  assert.deepEqual(clock.release().map((r) => r.staleness), [0, 0, 0]);
});

test("the staleness clock never releases a worker more than s steps ahead, under any push order", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 4 }), fc.array(fc.nat(), { maxLength: 200 }), (workers, s, picks) => {
      const steps = 8;
      const clock = new StalenessClock(workers, s);
      const running = new Set(clock.release().map((r) => r.worker));
      for (const pick of picks) {
        const choices = [...running];
        if (choices.length === 0) break;
        const w = choices[pick % choices.length]!;
        running.delete(w);
        clock.push(w, clock.clocks[w]! + 1 === steps);
        const slowest = clock.minActiveClock();
        for (const { worker, staleness } of clock.release()) {
          assert.ok(staleness <= s && clock.clocks[worker]! - slowest === staleness);
          running.add(worker);
        }
      }
      assert.ok(clock.maxObserved <= s);
      // Progress: somebody can always run until all have finished.
      assert.ok(running.size > 0 || clock.allFinished || picks.length === 0 || clock.blocked.length === 0 || running.size > 0);
    }),
  );
});

test("an infinite bound never blocks, and records how far ahead workers ran", () => {
  const clock = new StalenessClock(2, Infinity);
  clock.release();
  for (let k = 0; k < 5; k++) {
    clock.push(0, false);
    assert.deepEqual(clock.release().map((r) => r.worker), [0]);
  }
  assert.equal(clock.maxObserved, 5);
  assert.equal(clock.histogram[5], 1);
});

test("linear scaling with warm-up ramps from the base rate to k times it", () => {
  const o = { baseLr: 0.1, baseBatch: 32, warmupSteps: 4, scaling: "linear" as const };
  assert.equal(scaledLr(0, 256, o), 0.1);
  assert.ok(Math.abs(scaledLr(2, 256, o) - (0.1 + (0.8 - 0.1) / 2)) < 1e-12);
  assert.ok(Math.abs(scaledLr(4, 256, o) - 0.8) < 1e-12);
  assert.ok(Math.abs(scaledLr(100, 256, { ...o, warmupSteps: 0 }) - 0.8) < 1e-12);
  assert.equal(scaledLr(9, 256, { ...o, scaling: "none" }), 0.1);
});

test("straggler policies: batches and predicted step times", () => {
  assert.deepEqual(equalBatches(10, 4), [3, 3, 2, 2]);
  const c = [1, 1, 1, 4]; // ms per sample; rank 3 four times slower
  const batches = proportionalBatches(c.map((x) => 1 / x), 64);
  assert.equal(batches.reduce((a, b) => a + b, 0), 64);
  assert.ok(batches[3]! < batches[0]! / 3 && batches[3]! >= 1, `batches ${batches}`);
  assert.equal(predictedStepMs("equal", c, 64), 16 * 4);
  assert.ok(Math.abs(predictedStepMs("proportional", c, 64) - 64 / 3.25) < 1e-9);
  assert.equal(predictedStepMs("backup", c, 64, 1), 16, "the 3rd fastest of 4");
  assert.equal(predictedStepMs("backup", [1, 2, 3, 4], 4, 2), 2, "the 2nd fastest of 4");
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 8, max: 1000 }), (t, B) => {
      const b = proportionalBatches(t, B);
      assert.equal(b.reduce((x, y) => x + y, 0), B);
      assert.ok(b.every((x) => Number.isInteger(x) && x >= 1));
    }),
  );
});

test("proportional batches reach the smallest step time integers allow (brute force over small cases)", () => {
  const compositions = (total: number, parts: number): number[][] =>
    parts === 1 ? [[total]] : Array.from({ length: total - parts + 1 }, (_, k) => k + 1).flatMap((first) => compositions(total - first, parts - 1).map((rest) => [first, ...rest]));
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 3 }), fc.integer({ min: 3, max: 14 }), (speeds, B) => {
      if (B < speeds.length) return;
      const makespan = (b: readonly number[]) => Math.max(...b.map((x, i) => x / speeds[i]!));
      const best = Math.min(...compositions(B, speeds.length).map(makespan));
      assert.ok(Math.abs(makespan(proportionalBatches(speeds, B)) - best) < 1e-9, `speeds ${speeds} B ${B}: ${proportionalBatches(speeds, B)}`);
    }),
  );
});
