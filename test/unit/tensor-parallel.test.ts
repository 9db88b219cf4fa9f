// Tensor and sequence parallelism of the tiny GPT on real worlds of 2 and 4
// rank threads: the cut model's logits, loss and every gradient against the
// whole model on one rank; collectives and bytes as the transport counted them
// against the ring formulas; activation bytes kept for backward against the
// papers' formulas (sequence-parallel.ts).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { ThreadWorld } from "./comm-harness";
import { checkSequenceSplit, checkTensorParallelShape, float32ActivationBytes, validateTensorParallelOptions } from "../../kernel/src/techniques";

const worlds: ThreadWorld[] = [];
after(async () => {
  for (const w of worlds) await w.close();
});
const world = (size: number): ThreadWorld => {
  const w = new ThreadWorld(size, { workerFile: path.join(__dirname, "tensor-parallel-worker.ts") });
  worlds.push(w);
  return w;
};

interface Reply {
  logitDifference: number; lossDifference: number; gradDifference: number; gradScale: number;
  forwardWire: Record<string, { calls: number; bytesSent: number }>; backwardWire: Record<string, { calls: number; bytesSent: number }>;
  heldByBackend: number; heldByTape: number; perLayer: number[];
}
const SHAPE = { batch: 2, seq: 8, nEmbd: 16, nHead: 4, nLayer: 2 };
const run = async (w: ThreadWorld, options: object) => (await w.values("tensorParallel", Array(w.size).fill({ ...SHAPE, options }))) as Reply[];

/** Bytes rank r sends in a ring allReduce of L float32 on n ranks: 4 (2L - b_r - b_r+1). */
const block = (L: number, n: number, i: number) => Math.floor(((i + 1) * L) / n) - Math.floor((i * L) / n);
const ringAllReduce = (L: number, n: number, r: number) => 4 * (2 * L - block(L, n, r) - block(L, n, (r + 1) % n));

for (const t of [2, 4]) {
  test(`TP = ${t}: logits, loss and every gradient equal one rank's; 2 allReduces of b x s x h a layer each way`, async () => {
    const w = world(t);
    const L = SHAPE.batch * SHAPE.seq * SHAPE.nEmbd;
    const replies = await run(w, {});
    replies.forEach((r, rank) => {
      assert.ok(r.logitDifference < 1e-5, `rank ${rank}: logits differ by ${r.logitDifference}`);
      assert.ok(r.lossDifference < 1e-5, `rank ${rank}: loss differs by ${r.lossDifference}`);
      assert.ok(r.gradDifference < 1e-5 * Math.max(1, r.gradScale), `rank ${rank}: a gradient differs by ${r.gradDifference} (largest ${r.gradScale})`);
      for (const [phase, wire] of [["forward", r.forwardWire], ["backward", r.backwardWire]] as const) {
        assert.deepEqual(Object.keys(wire), ["allReduce"], `rank ${rank} ${phase}: ops ${JSON.stringify(wire)}`);
        assert.equal(wire.allReduce!.calls, 2 * SHAPE.nLayer, `rank ${rank} ${phase}: allReduces`);
        assert.equal(wire.allReduce!.bytesSent, 2 * SHAPE.nLayer * ringAllReduce(L, t, rank), `rank ${rank} ${phase}: bytes sent`);
      }
      const formula = float32ActivationBytes({ seq: SHAPE.seq, batch: SHAPE.batch, hidden: SHAPE.nEmbd, degree: t }, false, false);
      for (const held of r.perLayer) assert.equal(held, formula, `rank ${rank}: a layer keeps ${held} B, sbh(16 + 48/t) = ${formula}`);
      assert.equal(r.heldByBackend, r.heldByTape, `rank ${rank}: the backend holds ${r.heldByBackend} B more after forward, the tape ${r.heldByTape}`);
    });
  });

  test(`TP = ${t} with sequence parallelism and dropout: same results as TP; reduce-scatter + all-gather move the allReduces' bytes; 66 sbh / t kept a layer`, async () => {
    const w = worlds.find((x) => x.size === t)!;
    const L = SHAPE.batch * SHAPE.seq * SHAPE.nEmbd;
    const tp = await run(w, { dropout: 0.2, seed: 3 });
    const sp = await run(w, { dropout: 0.2, seed: 3, sequenceParallel: true, regatherInputs: false });
    const spRegather = await run(w, { dropout: 0.2, seed: 3, sequenceParallel: true });
    const spPlain = await run(w, { sequenceParallel: true });
    spPlain.forEach((r, rank) => {
      assert.ok(r.logitDifference < 1e-5 && r.lossDifference < 1e-5, `rank ${rank}: SP logits differ by ${r.logitDifference}, loss by ${r.lossDifference}`);
      assert.ok(r.gradDifference < 1e-5 * Math.max(1, r.gradScale), `rank ${rank}: an SP gradient differs from one rank's by ${r.gradDifference}`);
    });
    sp.forEach((r, rank) => {
      assert.ok(Math.abs(r.gradDifference - tp[rank]!.gradDifference) < 1e-5, `rank ${rank}: SP's gradients are off the one-rank run (without dropout) by ${r.gradDifference}, TP's by ${tp[rank]!.gradDifference}`);
      const tpBytes = tp[rank]!.forwardWire.allReduce!.bytesSent + tp[rank]!.backwardWire.allReduce!.bytesSent;
      const spBytes = ["reduceScatter", "allGather"].reduce((n, op) => n + (r.forwardWire[op]?.bytesSent ?? 0) + (r.backwardWire[op]?.bytesSent ?? 0), 0);
      assert.equal(spBytes, tpBytes, `rank ${rank}: SP's reduce-scatters and all-gathers sent ${spBytes} B, TP's allReduces ${tpBytes}`);
      assert.equal(r.forwardWire.reduceScatter!.calls, 2 * SHAPE.nLayer);
      assert.equal(r.forwardWire.allGather!.calls, 2 * SHAPE.nLayer);
      const regathered = spRegather[rank]!.backwardWire.allGather!.bytesSent - r.backwardWire.allGather!.bytesSent;
      assert.equal(regathered, 2 * SHAPE.nLayer * (t - 1) * 4 * (L / t), `rank ${rank}: re-gathering the column layers' inputs in backward`);
      const shape = { seq: SHAPE.seq, batch: SHAPE.batch, hidden: SHAPE.nEmbd, degree: t };
      for (const held of spRegather[rank]!.perLayer) assert.equal(held, float32ActivationBytes(shape, true, true), `rank ${rank}: SP keeps ${held} B a layer`);
      for (const held of tp[rank]!.perLayer) assert.equal(held, float32ActivationBytes(shape, false, true), `rank ${rank}: TP keeps ${held} B a layer`);
      assert.equal(spRegather[rank]!.heldByBackend, spRegather[rank]!.heldByTape);
    });
  });
}

test("bad input: hidden size or head count not divisible by the degree fails naming the values; unknown options too", () => {
  assert.throws(() => checkTensorParallelShape({ nEmbd: 30, nHead: 2 }, 4), /tinyGpt.nEmbd \(30\).*degree \(4\).*tinyGpt.nHead \(2\)/);
  assert.throws(() => checkTensorParallelShape({ nEmbd: 32, nHead: 6 }, 4), (e: Error) => e instanceof RangeError && /nHead \(6\)/.test(e.message) && !/nEmbd/.test(e.message));
  assert.doesNotThrow(() => checkTensorParallelShape({ nEmbd: 32, nHead: 4 }, 4));
  assert.throws(() => checkSequenceSplit(10, 4), /sequence length \(10\) must divide by the tensor-parallel degree \(4\)/);
  assert.throws(() => validateTensorParallelOptions({ dropout: 1 }), /tensorParallel.dropout must be in \[0, 1\), got 1/);
  assert.throws(() => validateTensorParallelOptions({ sequenceParalel: true } as never), /tensorParallel.sequenceParalel is not an option/);
});
