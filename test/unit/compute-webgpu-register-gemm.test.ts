// Which BatchMatMul products distlab's register-blocked WebGPU kernel takes
// (compute/webgpu/register-gemm.ts), and what it is told about them: the rest
// must go to TF.js's own kernel, since the shader assumes whole tiles,
// row-major float32 operands (transposed where BatchMatMul says) and one or
// `batch` B matrices.
// (The kernel's results are checked on a GPU: bench/gpu/webgpu-bench.ts
// MODE=matmul holds it against TF.js's shader.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_GEMM_TILES, gemmGroups, gemmPlan, gemmShader, gemmShape, gemmUniform, parseGemmTile, parseGemmTiles } from "../../kernel/src/compute/webgpu/register-gemm";
import { gemmTilesFromEnv } from "../../kernel/src/compute/webgpu/batch-mat-mul";

// the sizes below are multiples of 128, not all of 256: the 128x128 tile takes them all
const tile = parseGemmTile("128x128x16:8x8:p");
const f32 = (...shape: number[]) => ({ shape, dtype: "float32" });

test("gemm: the products it takes, with their batch and whether B is batched", () => {
  const plain = { transposeA: false, transposeB: false };
  assert.deepEqual(gemmShape(f32(256, 512), f32(512, 384), false, false, tile, 1), { batch: 1, m: 256, n: 384, k: 512, bBatched: false, ...plain });
  assert.deepEqual(gemmShape(f32(3, 256, 512), f32(3, 512, 384), false, false, tile, 1), { batch: 3, m: 256, n: 384, k: 512, bBatched: true, ...plain });
  // one B for every batch (a linear layer over [batch, T, C])
  assert.deepEqual(gemmShape(f32(3, 256, 512), f32(512, 384), false, false, tile, 1), { batch: 3, m: 256, n: 384, k: 512, bBatched: false, ...plain });
  assert.deepEqual(gemmShape(f32(3, 256, 512), f32(1, 512, 384), false, false, tile, 1), { batch: 3, m: 256, n: 384, k: 512, bBatched: false, ...plain });
  // the backward pass's products: x^T dy (A stored [K, M]) and dy W^T (B stored [N, K])
  assert.deepEqual(gemmShape(f32(512, 256), f32(512, 384), true, false, tile, 1), { batch: 1, m: 256, n: 384, k: 512, bBatched: false, transposeA: true, transposeB: false });
  assert.deepEqual(gemmShape(f32(2, 256, 512), f32(2, 384, 512), false, true, tile, 1), { batch: 2, m: 256, n: 384, k: 512, bBatched: true, transposeA: false, transposeB: true });
});

test("gemm: products it leaves to TF.js's kernel", () => {
  const cases: [string, ReturnType<typeof gemmShape>][] = [
    // shapes that fit untransposed: read transposed, their sizes are off the tile or disagree
    ["transposed A, M = 512 but K = 256 against B's 512", gemmShape(f32(256, 512), f32(512, 384), true, false, tile, 1)],
    ["transposed B, N = 512 but K = 384 against A's 512", gemmShape(f32(256, 512), f32(512, 384), false, true, tile, 1)],
    ["transposed A off the tile", gemmShape(f32(512, 200), f32(512, 384), true, false, tile, 1)],
    ["M off the tile", gemmShape(f32(200, 512), f32(512, 384), false, false, tile, 1)],
    ["N off the tile", gemmShape(f32(256, 512), f32(512, 300), false, false, tile, 1)],
    ["K off the slice", gemmShape(f32(256, 520), f32(520, 384), false, false, tile, 1)],
    ["int32", gemmShape({ shape: [256, 512], dtype: "int32" }, { shape: [512, 384], dtype: "int32" }, false, false, tile, 1)],
    ["batched B, one A", gemmShape(f32(256, 512), f32(3, 512, 384), false, false, tile, 1)],
    ["batches that differ", gemmShape(f32(3, 256, 512), f32(2, 512, 384), false, false, tile, 1)],
    ["rank 4", gemmShape(f32(2, 3, 256, 512), f32(2, 3, 512, 384), false, false, tile, 1)],
    ["inner sizes that differ", gemmShape(f32(256, 512), f32(256, 384), false, false, tile, 1)],
    ["fewer outputs than minOutputs", gemmShape(f32(256, 512), f32(512, 384), false, false, tile, 256 * 384 + 1)],
  ];
  for (const [what, shape] of cases) assert.equal(shape, undefined, what);
});

test("gemm: the uniform and the workgroups the shader reads", () => {
  const batched = gemmShape(f32(3, 256, 512), f32(3, 512, 384), false, false, tile, 1)!;
  // m, n, k, tiles of rows a batch, vec4s between B's batches
  assert.deepEqual([...gemmUniform(batched, tile)].slice(0, 5), [256, 384, 512, 2, (512 * 384) / 4]);
  assert.deepEqual(gemmGroups(batched, tile), [3, 6]);
  const shared = gemmShape(f32(3, 256, 512), f32(512, 384), false, false, tile, 1)!;
  assert.equal(gemmUniform(shared, tile)[4], 0);
  // the shader's workgroup matches the tile, and it declares the uniform's fields in that order
  assert.match(gemmShader(tile), /@workgroup_size\(16, 16\)/);
  assert.match(gemmShader(tile), /struct Dims \{ m : u32, n : u32, k : u32, tilesM : u32, bBatch4 : u32 \}/);
  // transposed operands are read along their stored rows: A^T by rows of k (m4 a row), B^T by rows of n (k4 a row)
  assert.match(gemmShader(tile, { transposeA: true }), /pa0 = a\[aBase \+ \(\(0u\) \+ aK0\) \* m4 \+ row0 \/ 4u \+ aM0\]/);
  assert.match(gemmShader(tile, { transposeB: true }), /pb0 = b\[bBase \+ \(col0 \+ bN0\) \* k4 \+ \(0u\) \/ 4u \+ bK0\]/);
});

test("gemm: a bad tile or DISTLAB_WEBGPU_GEMM value is named in the error", () => {
  assert.throws(() => parseGemmTile("128x128"), /must look like 128x128x16:8x8.*got "128x128"/);
  assert.throws(() => parseGemmTile("128x128x16:6x8"), /128x128x16:6x8: rows and columns a thread \(TMxTN\) must be 4 or 8/);
  assert.throws(() => parseGemmTile("512x128x16:8x8"), /512x128x16:8x8: 16 x 64 threads cannot split/);
  assert.throws(() => parseGemmTile("512x512x16:8x8"), /64 x 64 threads cannot split .*at most 1024 threads/);
  assert.throws(() => parseGemmTile("128x128x16:8x8:pz"), /must look like .*got "128x128x16:8x8:pz"/);
  assert.throws(() => gemmTilesFromEnv("big"), /DISTLAB_WEBGPU_GEMM: .*got "big".*or "off"/);
  assert.throws(() => gemmTilesFromEnv("128x256x16:8x8:pu,64x64"), /DISTLAB_WEBGPU_GEMM: .*got "64x64"/);
  assert.throws(() => gemmTilesFromEnv(" , "), /DISTLAB_WEBGPU_GEMM: no matMul tile in " , "/);
  assert.equal(gemmTilesFromEnv("off"), undefined);
  assert.deepEqual(gemmTilesFromEnv(undefined)!.map((t) => t.name), DEFAULT_GEMM_TILES.split(","));
  assert.deepEqual(gemmTilesFromEnv("256x128x16:8x8:pu, 128x128x16:8x8")!.map((t) => t.name), ["256x128x16:8x8:pu", "128x128x16:8x8"]);
});

test("gemm: a product runs on the first default tile its sizes take", () => {
  const tiles = parseGemmTiles(DEFAULT_GEMM_TILES);
  const planned = (a: number[], b: number[], transposeA = false, transposeB = false) => gemmPlan(f32(...a), f32(...b), transposeA, transposeB, tiles, 1)?.tile.name;
  assert.equal(planned([2048, 2048], [2048, 2048]), "128x256x16:8x8:pu");
  // GPT-2 small's products: [B*T, 768] x [768, 2304 | 768 | 3072] and the weight gradients [768, B*T] x [B*T, n]
  assert.equal(planned([8192, 768], [768, 2304]), "128x256x16:8x8:pu");
  assert.equal(planned([8192, 768], [8192, 3072], true, false), "128x256x16:8x8:pu");
  // N = 384 is no multiple of 256, M = 256 is
  assert.equal(planned([256, 512], [512, 384]), "256x128x16:8x8:pu");
  // neither M nor N a multiple of 256, K of 32
  assert.equal(planned([384, 512], [512, 384]), "128x128x32:8x8:pu");
  // K = 48: a multiple of 16 only
  assert.equal(planned([384, 48], [48, 384]), "128x128x16:8x8:p");
  assert.equal(planned([384, 40], [40, 384]), undefined, "K = 40: no tile's slice divides it");
  // the unrolled shader reads workgroup memory at constant offsets, no k loop
  const unrolled = gemmShader(parseGemmTile("128x256x16:8x8:pu"));
  assert.doesNotMatch(unrolled, /for \(var kk/);
  assert.match(unrolled, /@workgroup_size\(32, 16\)/);
  assert.match(unrolled, /let av0 = As\[0u \* 512u \+ \(15u \* 128u \+ ty \* 4u\) \/ 4u\];/);
});
