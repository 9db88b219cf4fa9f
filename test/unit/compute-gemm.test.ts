// The wasm SIMD matrix-product kernel (kernel/src/compute/wasm/gemm.ts)
// against a float64 reference: every transpose combination, shapes that
// are not multiples of the 4x8 register tile (and empty ones), a bias,
// operands at offsets inside larger arrays, and a right operand packed once
// for several left ones. Both forms of the kernel: fused multiply-add
// (relaxed SIMD) and separate multiply and add.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WasmGemm, type ProductShape } from "../../kernel/src/compute/wasm/gemm";
import { RELAXED_SIMD_FLAG, relaxedSimdCompiles } from "../../kernel/src/v8-start-flags";
import { assertClose, checkRandomProducts, random, reference } from "./gemm-reference";

for (const fma of ["1", "0"]) {
  const gemm = new WasmGemm({ DISTLAB_WASM_FMA: fma });
  const form = gemm.fma ? "fused multiply-add" : "multiply then add";

  test(`gemm (${form}): random shapes, transposes, bias and offsets match a float64 reference`, () => {
    checkRandomProducts((a, b, out, shape, bias) => gemm.multiply(a, b, out, shape, bias), 300, `gemm (${form})`);
  });

  test(`gemm (${form}): a shared right operand packed once serves several left operands`, () => {
    const shape: ProductShape = { m: 13, k: 70, n: 21, transposeA: true, transposeB: false };
    const b = random(70 * 21, 5), bias = random(21, 6);
    const out = new Float32Array(3 * 13 * 21);
    const lefts = [random(70 * 13, 7), random(70 * 13, 8), random(70 * 13, 9)];
    lefts.forEach((a, i) => gemm.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: out, offset: i * 13 * 21 }, shape, { data: bias, offset: 0 }, i > 0));
    lefts.forEach((a, i) => assertClose(out, i * 13 * 21, reference(a, 0, b, 0, shape, bias), 70, `left operand ${i}`));
  });

  test(`gemm (${form}): large operands with rows a multiple of 64 bytes long (copied at a padded pitch), k in several slices`, () => {
    for (const [transposeA, transposeB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const shape: ProductShape = { m: 48, k: 640, n: 512, transposeA, transposeB };
      const a = random(48 * 640, 12), b = random(640 * 512, 13), bias = random(512, 14);
      const out = new Float32Array(48 * 512);
      gemm.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: out, offset: 0 }, shape, { data: bias, offset: 0 });
      assertClose(out, 0, reference(a, 0, b, 0, shape, bias), 640, JSON.stringify(shape));
    }
  });

  test(`gemm (${form}): a product larger than the kernel's starting memory grows it`, () => {
    const shape: ProductShape = { m: 300, k: 515, n: 130, transposeA: false, transposeB: true };
    const a = random(300 * 515, 10), b = random(130 * 515, 11);
    const out = new Float32Array(300 * 130);
    gemm.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: out, offset: 0 }, shape);
    assertClose(out, 0, reference(a, 0, b, 0, shape), 515, "300x515 . (130x515)^T");
  });
}

test("DISTLAB_WASM_FMA=0 gives the multiply-then-add kernel; fused multiply-add is used where this Node compiles relaxed SIMD", () => {
  assert.equal(new WasmGemm({ DISTLAB_WASM_FMA: "0" }).fma, false);
  assert.equal(new WasmGemm({ DISTLAB_WASM_FMA: "0" }).fmaMissing, "DISTLAB_WASM_FMA=0");
  // Node 20 compiles relaxed SIMD when started with V8's flag (npm test starts it so, as the kernelspec and
  // rank processes do; v8-start-flags.ts); Node 22 without one. The kernel never sets the flag at run time.
  const gemm = new WasmGemm({});
  assert.equal(gemm.fma, relaxedSimdCompiles());
  if (!gemm.fma) assert.match(gemm.fmaMissing ?? "", new RegExp(`started with ${RELAXED_SIMD_FLAG}`));
});
