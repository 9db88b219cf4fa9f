import { test } from "node:test";
import assert from "node:assert/strict";
import { CombineArena } from "../../kernel/src/comm/wasm-combine";
import { jsReducer } from "../../kernel/src/comm/reduce-js";
import { REDUCE_OPS } from "../../kernel/src/comm/descriptor";
import { DTYPES, viewOf } from "../../kernel/src/comm/dtype";
import { fill } from "./comm-reference";

// The ring reduces every arriving piece here; if the module failed to build it would fall back to plain loops.
test("the combine arena builds on Node, so the ring reduces with SIMD", () => {
  assert.ok(CombineArena.create(), "CombineArena.create() returned undefined: its SIMD module did not validate");
});

test("combine equals the plain loop for every dtype and op, in place or not, with the piece landed in the arena or elsewhere", () => {
  const arena = CombineArena.create()!;
  DTYPES.forEach(({ ctor, name }, dtype) => {
    const width = ctor.BYTES_PER_ELEMENT;
    // more than one 256 KiB piece, and a tail that is not a whole 32-byte vector
    const length = Math.floor((600 * 1024) / width) + 5;
    const landed = Math.floor((1024 * 1024) / width) - 3; // fits the 1 MiB landing area
    REDUCE_OPS.forEach((op, redop) => {
      for (const inPlace of [false, true]) {
        for (const inLanding of [false, true]) {
          const n = inLanding ? landed : length;
          const a = fill(ctor as never, n, 7 + redop, true);
          let src = fill(ctor as never, n, 99 + dtype, true);
          if (inLanding) {
            const landing = viewOf(dtype, arena.landing(n * width).buffer, 0, n);
            landing.set(src as never);
            src = landing;
          }
          const want = a.slice();
          jsReducer(redop, dtype)(want, src);
          const dst = inPlace ? a : new ctor(n);
          arena.combiner(redop, dtype, width)(dst, a, src);
          const bad = want.findIndex((v, i) => !Object.is(v, dst[i]));
          assert.equal(bad, -1, `${name} ${op} inPlace=${inPlace} landed=${inLanding}: element ${bad} is ${dst[bad]}, want ${want[bad]}`);
        }
      }
    });
  });
});
