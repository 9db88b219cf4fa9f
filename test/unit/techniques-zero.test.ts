// ZeRO stages 1, 2 and 3 of the tiny GPT on real worlds of 3 and 4 rank
// threads, against stage 0 (plain data parallelism with the same Adam): the
// same losses and parameters, the model-state bytes each rank holds (walked
// over the live buffers, and the backend's count) against the float32-Adam
// formulas, and the bytes the transport sent per step against the ring's.
// On 3 ranks the units do not split evenly, so the padding is exercised.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { ThreadWorld } from "./comm-harness";
import type { ZeroReply } from "./zero-worker";
import { Zero, validateZeroOptions, zeroHeldBytesFormula, zeroWireElementsFormula, type ZeroStage } from "../../kernel/src/techniques";
import { createTinyGpt } from "../../kernel/src/models";

const worlds: ThreadWorld[] = [];
after(async () => {
  for (const w of worlds) await w.close();
});

const SHAPE = { steps: 3, nEmbd: 8, nLayer: 1, seq: 4, batch: 2 };
const STAGES: ZeroStage[] = [0, 1, 2, 3];
const TOLERANCE = 1e-5;

/** Ring allReduce of L float32 on n ranks: rank r sends 4 (2L - b_r - b_{r+1}) bytes (docs/collectives.md). */
const block = (L: number, n: number, i: number) => Math.floor(((i + 1) * L) / n) - Math.floor((i * L) / n);
const ringAllReduce = (L: number, n: number, r: number) => 4 * (2 * L - block(L, n, r) - block(L, n, (r + 1) % n));

for (const n of [3, 4]) {
  test(`ZeRO on ${n} ranks: stages 1-3 follow plain data parallelism; bytes held and sent follow the formulas`, async () => {
    const w = new ThreadWorld(n, { workerFile: path.join(__dirname, "zero-worker.ts") });
    worlds.push(w);
    const byStage = new Map<ZeroStage, ZeroReply[]>();
    for (const stage of STAGES) byStage.set(stage, (await w.values("zero", Array(n).fill({ ...SHAPE, stage }))) as ZeroReply[]);
    const control = byStage.get(0)!;
    const psi = control[0]!.psi;
    const padded = byStage.get(1)![0]!.padded;
    if (n === 3) {
      assert.ok(padded > psi, `on 3 ranks the units (${byStage.get(1)![0]!.units}) should need padding`);
      assert.match(byStage.get(1)![0]!.describe, /padded with \d+ zeros/);
    }
    for (const stage of STAGES) {
      for (const [rank, r] of byStage.get(stage)!.entries()) {
        const where = `stage ${stage}, rank ${rank}`;
        // the same trajectory as plain data parallelism
        const lossGap = Math.max(...r.losses.map((l, i) => Math.abs(l - control[rank]!.losses[i]!)));
        assert.ok(lossGap <= TOLERANCE, `${where}: losses ${r.losses} vs plain data parallelism ${control[rank]!.losses}`);
        const paramGap = Math.max(...r.parameters.map((p, i) => Math.abs(p - control[rank]!.parameters[i]!)));
        assert.ok(paramGap <= TOLERANCE, `${where}: parameters differ from plain data parallelism's by ${paramGap}`);
        // bytes held: exact with the padded sizes, and within 1% of the unpadded formula
        const P = stage === 0 ? psi : padded;
        const exact = {
          parameters: stage === 3 ? (4 * P) / n : 4 * psi,
          gradients: stage >= 2 ? (4 * P) / n : 4 * P,
          optimizer: stage >= 1 ? (8 * P) / n : 8 * P,
        };
        assert.deepEqual({ parameters: r.held.parameters, gradients: r.held.gradients, optimizer: r.held.optimizer }, exact, `${where}: bytes held`);
        const formula = zeroHeldBytesFormula(stage, psi, n).total;
        assert.ok(Math.abs(r.held.total / formula - 1) <= 0.01, `${where}: holds ${r.held.total} B, formula ${formula} B`);
        assert.equal(r.backendDelta, stage === 3 ? 0 : 4 * psi, `${where}: the backend's tensor bytes after setup`);
        // bytes sent per step, as the transport counted them
        const shardBytes = (4 * P) / n;
        const expected: Record<string, number> = stage === 0
          ? { allReduce: ringAllReduce(psi, n, rank) }
          : stage === 3
            ? { allGather: 2 * (n - 1) * shardBytes, reduceScatter: (n - 1) * shardBytes }
            : { allGather: (n - 1) * shardBytes, reduceScatter: (n - 1) * shardBytes };
        for (const sent of r.wire) assert.deepEqual(sent, expected, `${where}: bytes sent in a step`);
        const total = Object.values(r.wire[0]!).reduce((a, b) => a + b, 0);
        const wireFormula = 4 * zeroWireElementsFormula(stage, psi, n);
        assert.ok(Math.abs(total / wireFormula - 1) <= 0.01, `${where}: sent ${total} B a step, formula ${wireFormula} B`);
        if (stage === 3) {
          // one unit's parameters and gradients at a time, freed after use
          const largest = Math.max(...r.units);
          assert.ok(r.peakGatheredBytes > 0 && r.peakGatheredBytes <= 2 * 4 * largest, `${where}: ${r.peakGatheredBytes} B gathered at once, largest unit ${4 * largest} B`);
          assert.equal(r.gatheredAfter, 0, `${where}: gathered parameters left alive after the step`);
        }
      }
    }
  });
}

test("ZeRO options: a stage outside {0, 1, 2, 3}, an unknown option, a model without stages fail naming the value", async () => {
  assert.throws(() => validateZeroOptions({ stage: 4 as ZeroStage }), /zero\.stage must be 1, 2 or 3 .* got 4/);
  assert.throws(() => validateZeroOptions({ stage: "2" as unknown as ZeroStage }), /zero\.stage .* got "2"/);
  assert.throws(() => validateZeroOptions({ lr: -1 }), /zero\.lr must be in \(0, Infinity\], got -1/);
  assert.throws(() => validateZeroOptions({ stages: 2 } as never), /zero\.stages is not an option/);
  const solo = { rank: 0, size: 1, allReduce: async (x: Float32Array) => x, reduceScatter: async (x: Float32Array) => x, allGather: async (x: Float32Array) => x };
  await assert.rejects(Zero.create({ params: [], loss: () => { throw new Error("unused"); } } as never, solo), /zero: the model must be a staged model/);
  const gpt = createTinyGpt({ vocabSize: 5, blockSize: 4, nEmbd: 4, nHead: 1, nLayer: 1 });
  await assert.rejects(Zero.create(gpt, { rank: 0, size: 1 } as never, { stage: 2 }), /zero: the communicator has no allReduce/);
});
