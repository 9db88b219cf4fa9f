/**
 * A float32 matrix-product kernel in WebAssembly SIMD, emitted as bytes.
 *
 *   gemm(a, aRow, aK, b, bPanel, bK, c, ldc, bias, mBlocks, nPanels, k, accumulate, aBlock)
 *   C[mBlocks * MR, nPanels * NR] = A B (+ bias), where (byte offsets and
 *   byte strides into the module's own memory):
 *     A[b MR + r][kk]   at a + b * aBlock + r * aRow + kk * aK  (row-major A:
 *                       aRow = 4 k, aK = 4, aBlock = MR aRow; A in blocks
 *                       of MR rows by packQuads below: aRow = 4, aK = 16,
 *                       aBlock = 16 k)
 *     B[kk][p NR + j]   at b + p * bPanel + kk * bK + 4 j  (row-major B:
 *                       bPanel = 4 NR, bK = 4 n; B packed in panels of NR
 *                       columns: bPanel = 4 NR k, bK = 4 NR)
 *     C[i][j]           at c + i * ldc + 4 j           (ldc a multiple of 4 NR)
 *     bias[j]           at bias + 4 j, nPanels * NR of them; bias 0 = none.
 *   accumulate = 1: C += A B instead (C is read; bias unused): how a
 *   product whose k is split into slices adds each slice's part.
 * Rows of A past m and columns of B past n are read (so the memory must
 * hold them) and their results land in C's padding, which the caller
 * drops. k >= 1.
 *
 * The inner loop keeps an MR x NR tile of C in MR * NR / 4 SIMD registers
 * for all of k: per step it loads NR / 4 vectors of B, splats MR values of
 * A, and does MR * NR / 4 multiply-adds. With relaxed SIMD (V8's
 * --experimental-wasm-relaxed-simd on Node 20, on by default from Node 22)
 * each multiply-add is one f32x4.relaxed_madd, a fused multiply-add on CPUs
 * with FMA; without it, a multiply then an add. x86-64 has 16 SIMD
 * registers for V8 to allocate: MR * NR / 4 accumulators + NR / 4 + 1 must
 * stay within them.
 *
 * Emitted with simd-asm.ts (as the fused kernels are) rather than compiled
 * from C or text at build time: it is one loop nest, and emitting it needs
 * no wasm toolchain in the build.
 */
import { add, Func, moduleBytes, mul, op, type Code, type ValueType } from "./simd-asm";


export interface GemmShape {
  /** Rows of the register tile. */
  mr: number;
  /** Columns of the register tile, a multiple of 4. */
  nr: number;
  /** Use f32x4.relaxed_madd (needs relaxed SIMD). */
  fma: boolean;
}

// Instructions simd-asm.ts leaves out (https://webassembly.github.io/spec/core/binary/instructions.html).
const LOAD32_SPLAT: Code = [0xfd, 0x09, 0x02, 0x00]; // v128.load32_splat, offset 0
const RELAXED_MADD: Code = [0xfd, 0x85, 0x02]; // f32x4.relaxed_madd (0x105): a * b + c
const ZERO = op.vconst(0, 0, 0, 0);
const loop = (body: Code[]): Code => [0x03, 0x40, body, 0x0b];
const brIf = (depth: number): Code => [0x0d, depth];

/**
 * for (name = 0; name < count; name++) body, count evaluated each time
 * (unsigned compare: counts and offsets here are non-negative).
 */
function countUp(f: Func, name: string, count: Code, body: Code[]): Code {
  return [
    f.set(name, op.i32(0)),
    [0x02, 0x40], [0x03, 0x40],
    f.get(name), count, op.geU, [0x0d, 1],
    body,
    f.set(name, add(f.get(name), op.i32(1))),
    [0x0c, 0], 0x0b, 0x0b,
  ];
}

function gemmFunction({ mr, nr, fma }: GemmShape): { func: Func; code: Code[] } {
  if (nr % 4 !== 0) throw new RangeError(`gemm: nr must be a multiple of 4, got ${nr}`);
  const nv = nr / 4; // vectors per tile row
  const params = ["a", "aRow", "aK", "b", "bPanel", "bK", "c", "ldc", "bias", "mBlocks", "nPanels", "k", "accumulate", "aBlock"];
  // i32 locals: counters, the B pointer, the k countdown, the tile's first C row and a C row pointer, the
  // block's first A row and one A pointer per tile row; v128 locals: accumulators, B vectors, the A splat.
  const locals: Record<string, ValueType> = { panel: "i32", block: "i32", pb: "i32", kk: "i32", cTile: "i32", cRow: "i32", aBlockAt: "i32" };
  for (let r = 0; r < mr; r++) locals[`pa${r}`] = "i32";
  for (let r = 0; r < mr; r++) for (let v = 0; v < nv; v++) locals[`acc${r}_${v}`] = "v128";
  for (let v = 0; v < nv; v++) locals[`b${v}`] = "v128";
  locals.splat = "v128";
  const f = new Func(Object.fromEntries(params.map((name) => [name, "i32" as ValueType])), locals);
  const { get, set } = f;
  const acc = (r: number, v: number) => `acc${r}_${v}`;

  const madd = (target: string, b: string): Code => fma
    ? set(target, [get("splat"), get(b), get(target), RELAXED_MADD])
    : set(target, [get("splat"), get(b), op.vMul, get(target), op.vAdd]);

  // One step of k: NR / 4 vectors of B, then per tile row a splat of A and NR / 4 multiply-adds.
  const kStep: Code[] = [];
  for (let v = 0; v < nv; v++) kStep.push(set(`b${v}`, [get("pb"), op.load(16 * v)]));
  for (let r = 0; r < mr; r++) {
    kStep.push(set("splat", [get(`pa${r}`), LOAD32_SPLAT]));
    for (let v = 0; v < nv; v++) kStep.push(madd(acc(r, v), `b${v}`));
    kStep.push(set(`pa${r}`, add(get(`pa${r}`), get("aK"))));
  }
  kStep.push(set("pb", add(get("pb"), get("bK"))));

  /** `perRow(r)` for each row of the tile, with cRow at that row of C. */
  const overTileRows = (perRow: (r: number) => Code[]): Code[] => {
    const code: Code[] = [set("cRow", get("cTile"))];
    for (let r = 0; r < mr; r++) {
      code.push(perRow(r));
      if (r < mr - 1) code.push(set("cRow", add(get("cRow"), get("ldc"))));
    }
    return code;
  };
  const vectors = (each: (v: number) => Code): Code[] => Array.from({ length: nv }, (_, v) => each(v));

  // Per tile: where it lies in C, the A row pointers, the B pointer, and the accumulators: C's tile
  // where accumulating (a later slice of k), else the bias, or zero where bias is 0.
  const initTile: Code[] = [
    set("cTile", add(add(get("c"), mul(mul(get("block"), op.i32(mr)), get("ldc"))), mul(get("panel"), op.i32(4 * nr)))),
    set("aBlockAt", add(get("a"), mul(get("block"), get("aBlock")))),
    ...Array.from({ length: mr }, (_, r) => set(`pa${r}`, add(get("aBlockAt"), mul(op.i32(r), get("aRow"))))),
    set("pb", add(get("b"), mul(get("panel"), get("bPanel")))),
    set("kk", get("k")),
    [get("accumulate"), 0x04, 0x40,
      overTileRows((r) => vectors((v) => set(acc(r, v), [get("cRow"), op.load(16 * v)]))),
      0x05,
      vectors((v) => set(`b${v}`, ZERO)),
      [get("bias"), 0x04, 0x40, vectors((v) => set(`b${v}`, [add(get("bias"), mul(get("panel"), op.i32(4 * nr))), op.load(16 * v)])), 0x0b],
      Array.from({ length: mr }, (_, r) => vectors((v) => set(acc(r, v), get(`b${v}`)))),
      0x0b],
  ];
  const store = overTileRows((r) => vectors((v) => [get("cRow"), get(acc(r, v)), op.store(16 * v)]));

  const code: Code[] = [
    countUp(f, "panel", get("nPanels"), [
      countUp(f, "block", get("mBlocks"), [
        initTile,
        loop([kStep, set("kk", [get("kk"), op.i32(1), op.sub]), get("kk"), brIf(0)]),
        store,
      ]),
    ]),
  ];
  return { func: f, code };
}

/**
 * packQuads(src, srcStride, dst, quads, k): for q < quads, kk < k:
 * dst[(q k + kk) * 16 ..] = the 16 bytes at src + q * 16 + kk * srcStride.
 * Turns A stored transposed ([k, m] at a row pitch) into blocks of 4 rows
 * with each step's 4 values adjacent and the steps contiguous, so the
 * kernel walks a block sequentially (aRow 4, aK 16) rather than one cache
 * line per step. One SIMD load and store per 4 floats.
 */
function packQuadsFunction(): { func: Func; code: Code[] } {
  const f = new Func({ src: "i32", srcStride: "i32", dst: "i32", quads: "i32", k: "i32" }, { quad: "i32", p: "i32", kk: "i32" });
  const { get, set } = f;
  const code: Code[] = [
    countUp(f, "quad", get("quads"), [
      set("p", add(get("src"), mul(get("quad"), op.i32(16)))),
      set("kk", get("k")),
      loop([
        get("dst"), get("p"), op.load(0), op.store(0),
        set("dst", add(get("dst"), op.i32(16))),
        set("p", add(get("p"), get("srcStride"))),
        set("kk", [get("kk"), op.i32(1), op.sub]),
        get("kk"), brIf(0),
      ]),
    ]),
  ];
  return { func: f, code };
}

/** The module's bytes: exports `gemm` and `packQuads`; imports its memory as env.memory. */
export function gemmModuleBytes(shape: GemmShape): Uint8Array {
  return moduleBytes([{ name: "gemm", ...gemmFunction(shape) }, { name: "packQuads", ...packQuadsFunction() }]);
}
