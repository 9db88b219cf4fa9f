import { test } from "node:test";
import assert from "node:assert/strict";
import { WasmArena } from "../../kernel/src/comm/wasm-arena";
import { jsReducer } from "../../kernel/src/comm/reduce-js";
import { REDUCE_OPS } from "../../kernel/src/comm/descriptor";
import { DTYPES } from "../../kernel/src/comm/dtype";

// The channel algorithms (ring, rhd, every tcp collective) reduce in this arena; if it fails to
// link they silently fall back to plain JavaScript loops at a fraction of the speed.
test("the rank's WebAssembly arena links on Node, so channel algorithms reduce with SIMD", () => {
  assert.ok(WasmArena.create(), "WasmArena.create() returned undefined: the SIMD module did not link to the arena's memory");
});

test("the arena's SIMD sum and max equal the plain loop across several scratch pieces", () => {
  const arena = WasmArena.create()!;
  const float32 = DTYPES.findIndex((d) => d.ctor === Float32Array);
  const length = 700_000; // 2.8 MB of float32: more than the 1 MiB scratch area, so src is copied in pieces
  for (const op of ["sum", "max"] as const) {
    const redop = REDUCE_OPS.indexOf(op);
    const a = Float32Array.from({ length }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length }, (_, i) => Math.cos(i * 0.5));
    const expected = a.slice();
    jsReducer(redop, float32)(expected, b);
    const dst = arena.view(float32, length, 4) as Float32Array;
    dst.set(a);
    arena.reducer(redop, float32, 4)(dst, b);
    assert.deepEqual(Array.from(dst.subarray(0, 8)), Array.from(expected.subarray(0, 8)));
    assert.ok(dst.every((v, i) => v === expected[i]), `${op}: SIMD result differs from the plain loop`);
  }
});
