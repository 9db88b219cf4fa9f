// The automatic choice of a collective's algorithm (choose.ts, the table in docs/collectives.md)
// and the refusals of algorithms an op, group or transport cannot run.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { PAIRWISE_MAX_BYTES, PAIRWISE_MAX_RANKS, SMALL_MESSAGE_BYTES, chooseAlgorithm } from "../../kernel/src/comm/choose";

const MiB = 1 << 20;

test("allReduce over a network: recursive doubling up to 64 KiB, then pairwise up to 4 MiB for 3 to 4 ranks, the ring otherwise", () => {
  const pick = (n: number, bytes: number, overNetwork: boolean) => chooseAlgorithm("allReduce", undefined, { direct: false, n, bytes, overNetwork });
  assert.equal(PAIRWISE_MAX_RANKS, 4);
  assert.equal(PAIRWISE_MAX_BYTES, 4 * MiB);
  for (let n = 2; n <= 8; n++) {
    assert.equal(pick(n, SMALL_MESSAGE_BYTES, true), "recursive-doubling", `n=${n}, 64 KiB`);
    assert.equal(pick(n, SMALL_MESSAGE_BYTES + 4, true), n >= 3 && n <= 4 ? "pairwise" : "ring", `n=${n}, over 64 KiB, network`);
    assert.equal(pick(n, 4 * MiB, true), n >= 3 && n <= 4 ? "pairwise" : "ring", `n=${n}, 4 MiB, network`);
    assert.equal(pick(n, 4 * MiB + 4, true), "ring", `n=${n}, over 4 MiB, network`);
    assert.equal(pick(n, 64 * MiB, false), "ring", `n=${n}, one host (Unix sockets, emulated links)`);
  }
  assert.equal(chooseAlgorithm("allReduce", undefined, { direct: true, n: 3, bytes: MiB, overNetwork: false }), "direct");
});

test("pairwise is an allReduce algorithm only: asked for elsewhere, a RangeError names what is available", () => {
  assert.equal(chooseAlgorithm("allReduce", "pairwise", { direct: true, n: 7, bytes: 4 }), "pairwise");
  assert.throws(
    () => chooseAlgorithm("reduceScatter", "pairwise", { direct: false, n: 3, bytes: MiB }),
    /reduceScatter: algorithm "pairwise" is not available; use "ring" or "rhd" or "direct"/,
  );
});
