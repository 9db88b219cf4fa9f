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
 * Emitted here rather than compiled from C or text at build time: it is
 * one loop nest, and emitting it needs no wasm toolchain in the build.
 */

export interface GemmShape {
  /** Rows of the register tile. */
  mr: number;
  /** Columns of the register tile, a multiple of 4. */
  nr: number;
  /** Use f32x4.relaxed_madd (needs relaxed SIMD). */
  fma: boolean;
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}
const str = (s: string) => [...uleb(s.length), ...Buffer.from(s)];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

// Instructions (https://webassembly.github.io/spec/core/binary/instructions.html).
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32 = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = 0x6a, I32_SUB = 0x6b, I32_MUL = 0x6c, I32_GE_U = 0x4f;
const TEE = (i: number) => [0x22, ...uleb(i)];
const IF = [0x04, 0x40];
const simd = (op: number) => [0xfd, ...uleb(op)];
const v128Load = (offset: number) => [...simd(0x00), 0x04, ...uleb(offset)];
const v128Store = (offset: number) => [...simd(0x0b), 0x04, ...uleb(offset)];
const load32Splat = (offset: number) => [...simd(0x09), 0x02, ...uleb(offset)];
const V128_ZERO = [...simd(0x0c), ...new Array<number>(16).fill(0)];
const F32X4_ADD = simd(0xe4), F32X4_MUL = simd(0xe6), F32X4_RELAXED_MADD = simd(0x105);
const BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], END = 0x0b, ELSE = 0x05;
const br = (depth: number) => [0x0c, depth];
const brIf = (depth: number) => [0x0d, depth];

/** The module's bytes: exports `gemm`, `packQuads` and its memory `memory` (unshared, `pages` 64 KiB pages to start). */
export function gemmModuleBytes({ mr, nr, fma }: GemmShape, pages = 16): Uint8Array {
  if (nr % 4 !== 0) throw new RangeError(`gemm: nr must be a multiple of 4, got ${nr}`);
  const nv = nr / 4; // vectors per tile row
  // params (byte offsets and byte strides)
  const A = 0, A_ROW = 1, A_K = 2, B = 3, B_PANEL = 4, B_K = 5, C = 6, LDC = 7, BIAS = 8, M_BLOCKS = 9, N_PANELS = 10, K = 11, ACCUMULATE = 12, A_BLOCK_BYTES = 13;
  const PARAMS = 14;
  // i32 locals: panel and block counters, the B pointer, k countdown, the tile's first C row, a C row
  // pointer, the block's first A row, mr A row pointers
  const PANEL = PARAMS, BLOCK_I = PARAMS + 1, PB = PARAMS + 2, KK = PARAMS + 3, C_TILE = PARAMS + 4, C_ROW = PARAMS + 5, A_BLOCK = PARAMS + 6;
  const PA0 = PARAMS + 7;
  const I32_LOCALS = 7 + mr;
  // v128 locals: accumulators acc(r, v), then the B vectors, then the A splat
  const ACC0 = PARAMS + I32_LOCALS;
  const acc = (r: number, v: number) => ACC0 + r * nv + v;
  const B0 = ACC0 + mr * nv;
  const SPLAT = B0 + nv;
  const V128_LOCALS = mr * nv + nv + 1;

  const madd = (a: number, b: number, target: number) => fma
    ? [...get(a), ...get(b), ...get(target), ...F32X4_RELAXED_MADD, ...set(target)]
    : [...get(a), ...get(b), ...F32X4_MUL, ...get(target), ...F32X4_ADD, ...set(target)];

  const kStep: number[] = [];
  for (let v = 0; v < nv; v++) kStep.push(...get(PB), ...v128Load(16 * v), ...set(B0 + v));
  for (let r = 0; r < mr; r++) {
    kStep.push(...get(PA0 + r), ...load32Splat(0), ...set(SPLAT));
    for (let v = 0; v < nv; v++) kStep.push(...madd(SPLAT, B0 + v, acc(r, v)));
    kStep.push(...get(PA0 + r), ...get(A_K), I32_ADD, ...set(PA0 + r));
  }
  kStep.push(...get(PB), ...get(B_K), I32_ADD, ...set(PB));

  // C_TILE = c + block * MR * ldc + panel * NR * 4
  const tileStart = [
    ...get(C), ...get(BLOCK_I), ...i32(mr), I32_MUL, ...get(LDC), I32_MUL, I32_ADD, ...get(PANEL), ...i32(4 * nr), I32_MUL, I32_ADD, ...set(C_TILE),
  ];
  /** `perRow(r)` for each row of the tile, with C_ROW at row r of the tile in C. */
  const overTileRows = (perRow: (r: number) => number[]) => {
    const code = [...get(C_TILE), ...set(C_ROW)];
    for (let r = 0; r < mr; r++) {
      code.push(...perRow(r));
      if (r < mr - 1) code.push(...get(C_ROW), ...get(LDC), I32_ADD, ...set(C_ROW));
    }
    return code;
  };

  // Per tile: the A row pointers, the B pointer, and the accumulators: C's tile where accumulating (a
  // later slice of k), else the bias, or zero where bias is 0.
  const initTile: number[] = [
    ...tileStart,
    ...get(A), ...get(BLOCK_I), ...get(A_BLOCK_BYTES), I32_MUL, I32_ADD, ...set(A_BLOCK),
  ];
  for (let r = 0; r < mr; r++) initTile.push(...get(A_BLOCK), ...i32(r), ...get(A_ROW), I32_MUL, I32_ADD, ...set(PA0 + r));
  initTile.push(...get(B), ...get(PANEL), ...get(B_PANEL), I32_MUL, I32_ADD, ...set(PB));
  initTile.push(...get(K), ...set(KK));
  initTile.push(...get(ACCUMULATE), ...IF);
  initTile.push(...overTileRows((r) => Array.from({ length: nv }, (_, v) => [...get(C_ROW), ...v128Load(16 * v), ...set(acc(r, v))]).flat()));
  initTile.push(ELSE);
  for (let v = 0; v < nv; v++) initTile.push(...V128_ZERO, ...set(B0 + v));
  initTile.push(...get(BIAS), ...IF);
  for (let v = 0; v < nv; v++) initTile.push(...get(BIAS), ...get(PANEL), ...i32(4 * nr), I32_MUL, I32_ADD, ...v128Load(16 * v), ...set(B0 + v));
  initTile.push(END);
  for (let r = 0; r < mr; r++) for (let v = 0; v < nv; v++) initTile.push(...get(B0 + v), ...set(acc(r, v)));
  initTile.push(END);

  const store = overTileRows((r) => Array.from({ length: nv }, (_, v) => [...get(C_ROW), ...get(acc(r, v)), ...v128Store(16 * v)]).flat());

  const body: number[] = [
    ...i32(0), ...set(PANEL),
    ...BLOCK, ...LOOP, // over panels of B
    ...get(PANEL), ...get(N_PANELS), I32_GE_U, ...brIf(1),
    ...i32(0), ...set(BLOCK_I),
    ...BLOCK, ...LOOP, // over blocks of A
    ...get(BLOCK_I), ...get(M_BLOCKS), I32_GE_U, ...brIf(1),
    ...initTile,
    ...LOOP, // over k, counting down
    ...kStep,
    ...get(KK), ...i32(1), I32_SUB, ...TEE(KK), ...brIf(0),
    END,
    ...store,
    ...get(BLOCK_I), ...i32(1), I32_ADD, ...set(BLOCK_I),
    ...br(0),
    END, END,
    ...get(PANEL), ...i32(1), I32_ADD, ...set(PANEL),
    ...br(0),
    END, END,
    END,
  ];
  const locals = [0x02, ...uleb(I32_LOCALS), 0x7f, ...uleb(V128_LOCALS), 0x7b];
  const code = [...locals, ...body];

  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [
      0x02,
      0x60, ...uleb(PARAMS), ...new Array<number>(PARAMS).fill(0x7f), 0x00, // gemm: (i32 x 14) -> ()
      0x60, 0x05, ...new Array<number>(5).fill(0x7f), 0x00, // packQuads: (i32 x 5) -> ()
    ]),
    ...section(3, [0x02, 0x00, 0x01]),
    ...section(5, [0x01, 0x00, ...uleb(pages)]), // one unshared memory, no maximum
    ...section(7, [0x03, ...str("gemm"), 0x00, 0x00, ...str("packQuads"), 0x00, 0x01, ...str("memory"), 0x02, 0x00]),
    ...section(10, [0x02, ...uleb(code.length), ...code, ...packQuadsCode()]),
  ]);
}

/**
 * packQuads(src, srcStride, dst, quads, k): for q < quads, kk < k:
 * dst[(q k + kk) * 16 ..] = the 16 bytes at src + q * 16 + kk * srcStride.
 * Turns A stored transposed ([k, m] at a row pitch) into blocks of 4 rows
 * with each step's 4 values adjacent and the steps contiguous, so the
 * kernel walks a block sequentially (aRow 4, aK 16) rather than one cache
 * line per step. One SIMD load and store per 4 floats.
 */
function packQuadsCode(): number[] {
  const SRC = 0, STRIDE = 1, DST = 2, QUADS = 3, K = 4;
  const Q = 5, P = 6, KK = 7; // locals: quad counter, source pointer, k countdown
  const body = [
    ...i32(0), ...set(Q),
    ...BLOCK, ...LOOP,
    ...get(Q), ...get(QUADS), I32_GE_U, ...brIf(1),
    ...get(SRC), ...get(Q), ...i32(16), I32_MUL, I32_ADD, ...set(P),
    ...get(K), ...set(KK),
    ...LOOP,
    ...get(DST), ...get(P), ...v128Load(0), ...v128Store(0),
    ...get(DST), ...i32(16), I32_ADD, ...set(DST),
    ...get(P), ...get(STRIDE), I32_ADD, ...set(P),
    ...get(KK), ...i32(1), I32_SUB, ...TEE(KK), ...brIf(0),
    END,
    ...get(Q), ...i32(1), I32_ADD, ...set(Q),
    ...br(0),
    END, END,
    END,
  ];
  const code = [0x01, 0x03, 0x7f, ...body];
  return [...uleb(code.length), ...code];
}
