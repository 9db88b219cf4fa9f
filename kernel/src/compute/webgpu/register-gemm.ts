/**
 * A register-blocked f32 matMul for TF.js's webgpu backend: C = op(A) op(B)
 * (op: as stored, or transposed) for sizes that are multiples of the tile.
 *
 * Each workgroup owns a BM x BN tile of C and walks K in BK-deep slices: the
 * slice of A is stored transposed in workgroup memory (As[k][m]) and the slice
 * of B as it is (Bs[k][n]); each thread multiplies the TM rows and TN columns
 * it owns, TM x TN accumulators in registers (vec4s of columns). A thread's
 * 8 rows (columns) are two groups of 4 that lie half a tile apart, so the 8
 * threads of one 128-bit load phase read 128 consecutive bytes of workgroup
 * memory (no bank conflicts) and C is written in coalesced vec4s. With
 * `prefetch`, the next slice is read from storage into registers before the
 * current one is multiplied (the reads' latency hides behind the FMAs).
 *
 * With `unroll`, the slice's k loop is written out: every workgroup-memory
 * read has a constant offset from the thread's base.
 *
 * Why not TF.js's packed vec4 shader with bigger tiles (batch-mat-mul.ts
 * retunes that one): its threads own 4 columns, at most 4 x 8 outputs, and
 * every output it loads into workgroup memory feeds fewer multiply-adds. On
 * an H200, f32, n = 2048-8192 (bench/gpu/sgemm-bench.mjs): 128x256x16:8x8
 * with prefetch and the loop unrolled 41.3-42.7 TFLOP/s (512 threads), 256x128
 * 40.6-41.8, 128x128x32 39.0-40.6, 128x128x16 with prefetch 37.6-38.5 (unrolled:
 * the same), TF.js's best tile 27.7-29.5; two slices in workgroup memory (one
 * barrier a slice) 28, 64x64 tiles 29-31 (docs/compute.md, "Figures behind
 * the code"). Hence DEFAULT_GEMM_TILES: the largest tile a product's sizes
 * take, first.
 *
 * Shapes: A [batch, M, K] (or [batch, K, M] transposed), B [batch or 1, K, N]
 * (or [.., N, K] transposed), C [batch, M, N], row-major float32. Workgroups: (N / BN, batch * M / BM); workgroup y = batch index *
 * (M / BM) + tile row.
 */

export interface GemmTile {
  name: string;
  /** output rows and columns a workgroup owns, and the depth of a slice */
  bm: number;
  bn: number;
  bk: number;
  /** output rows and columns a thread owns (4 or 8 each) */
  tm: number;
  tn: number;
  /** read the next slice into registers while multiplying this one */
  prefetch: boolean;
  /** two slices in workgroup memory, one barrier a slice (implies prefetch) */
  double: boolean;
  /** consecutive threads move consecutive rows of A (conflict-free transposed stores, less coalesced reads) */
  rowMajorA: boolean;
  /** the slice's k loop written out (constant workgroup-memory offsets) instead of a WGSL loop */
  unroll: boolean;
  /** threads a workgroup: (BN / TN) x (BM / TM) */
  wgX: number;
  wgY: number;
}

/**
 * The tiles a product may run on, fastest first (the H200 sweep, header): a product takes the first
 * whose sizes divide its own (gemmPlan), so N a multiple of 256 gets 128x256, M one 256x128, the
 * rest of the multiples of 128 the 128x128 tiles (32 deep where K allows).
 */
export const DEFAULT_GEMM_TILES = "128x256x16:8x8:pu,256x128x16:8x8:pu,128x128x32:8x8:pu,128x128x16:8x8:p";

/** Comma-separated tiles, in order of preference (DEFAULT_GEMM_TILES, DISTLAB_WEBGPU_GEMM); throws naming the one at fault. */
export function parseGemmTiles(text: string): GemmTile[] {
  const tiles = text.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (tiles.length === 0) throw new RangeError(`no matMul tile in ${JSON.stringify(text)}`);
  return tiles.map(parseGemmTile);
}

/**
 * "BMxBNxBK:TMxTN" with optional flags after a third colon: p = prefetch, d = two slices in
 * workgroup memory (implies p), m = A's rows to consecutive threads, u = the slice's k loop
 * written out. Throws naming the text.
 */
export function parseGemmTile(text: string): GemmTile {
  const m = /^(\d+)x(\d+)x(\d+):(\d+)x(\d+)(?::([pdmu]+))?$/.exec(text);
  if (!m) throw new RangeError(`a matMul tile must look like 128x128x16:8x8 or 128x128x16:8x8:p (BMxBNxBK:TMxTN[:flags p, d, m, u]), got ${JSON.stringify(text)}`);
  const [bm, bn, bk, tm, tn] = m.slice(1, 6).map(Number) as [number, number, number, number, number];
  const flags = m[6] ?? "";
  if (![4, 8].includes(tm) || ![4, 8].includes(tn)) throw new RangeError(`matMul tile ${text}: rows and columns a thread (TMxTN) must be 4 or 8 each`);
  const wgX = bn / tn, wgY = bm / tm;
  const threads = wgX * wgY;
  if (!Number.isInteger(wgX) || !Number.isInteger(wgY) || threads > 1024 || bk % 4 !== 0 || ((bm * bk) / 4) % threads !== 0 || ((bk * bn) / 4) % threads !== 0) {
    throw new RangeError(`matMul tile ${text}: ${wgX} x ${wgY} threads cannot split its ${bm}x${bk} and ${bk}x${bn} slices evenly (BK a multiple of 4, at most 1024 threads)`);
  }
  const double = flags.includes("d");
  return { name: text, bm, bn, bk, tm, tn, prefetch: double || flags.includes("p"), double, rowMajorA: flags.includes("m"), unroll: flags.includes("u"), wgX, wgY };
}

/**
 * A product the kernel takes: sizes in elements; bBatched false when one B serves every batch;
 * transposeA: A is stored [K, M] (the product uses A^T), transposeB: B is stored [N, K].
 */
export interface GemmShape {
  batch: number;
  m: number;
  n: number;
  k: number;
  bBatched: boolean;
  transposeA: boolean;
  transposeB: boolean;
}

/** Workgroups along one dispatch dimension at most (WebGPU's default limit). */
const MAX_GROUPS = 65535;

/**
 * The shape of op(A) op(B) when `tile` computes it (op transposes where asked, as BatchMatMul's
 * attributes say): both float32, rank 2 or 3 with equal batches (or one B), every size a multiple
 * of the tile and at least `minOutputs` outputs a batch; otherwise undefined (the caller runs
 * TF.js's own kernel).
 */
export function gemmShape(
  a: { shape: number[]; dtype: string }, b: { shape: number[]; dtype: string }, transposeA: boolean, transposeB: boolean, tile: GemmTile, minOutputs: number,
): GemmShape | undefined {
  if (a.dtype !== "float32" || b.dtype !== "float32") return undefined;
  const rank = a.shape.length;
  if (rank < 2 || rank > 3 || b.shape.length < 2 || b.shape.length > 3) return undefined;
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const [m, k] = transposeA ? [a1, a0] : [a0, a1];
  const [kb, n] = transposeB ? [b1, b0] : [b0, b1];
  const batch = rank === 3 ? a.shape[0]! : 1;
  const bBatch = b.shape.length === 3 ? b.shape[0]! : 1;
  if (kb !== k || (bBatch !== batch && bBatch !== 1) || batch < 1) return undefined;
  if (m % tile.bm || n % tile.bn || k % tile.bk || k === 0 || m * n < minOutputs) return undefined;
  if (n / tile.bn > MAX_GROUPS || (batch * m) / tile.bm > MAX_GROUPS) return undefined;
  return { batch, m, n, k, bBatched: bBatch > 1, transposeA, transposeB };
}

/** The first of `tiles` that takes the product (gemmShape), with the product's shape; undefined when none does. */
export function gemmPlan(
  a: { shape: number[]; dtype: string }, b: { shape: number[]; dtype: string }, transposeA: boolean, transposeB: boolean, tiles: readonly GemmTile[], minOutputs: number,
): { tile: GemmTile; shape: GemmShape } | undefined {
  for (const tile of tiles) {
    const shape = gemmShape(a, b, transposeA, transposeB, tile, minOutputs);
    if (shape) return { tile, shape };
  }
  return undefined;
}

/** The uniform the shader reads: m, n, k, tiles of rows a batch, vec4s between batches of B (0: one B), 16-byte padded. */
export function gemmUniform(shape: GemmShape, tile: GemmTile): Uint32Array {
  return new Uint32Array([shape.m, shape.n, shape.k, shape.m / tile.bm, shape.bBatched ? (shape.k * shape.n) / 4 : 0, 0, 0, 0]);
}

const shaders = new Map<string, string>();

/** gemmShader for the tile and the shape's transposes, generated once per combination. */
export function gemmShaderFor(tile: GemmTile, shape: Pick<GemmShape, "transposeA" | "transposeB">): string {
  const key = `${tile.name}/${shape.transposeA}/${shape.transposeB}`;
  let code = shaders.get(key);
  if (code === undefined) shaders.set(key, (code = gemmShader(tile, shape)));
  return code;
}

/** Workgroups (x, y) for `shape`. */
export function gemmGroups(shape: GemmShape, tile: GemmTile): [number, number] {
  return [shape.n / tile.bn, (shape.batch * shape.m) / tile.bm];
}

/** Offsets within a tile dimension of a thread's `count` rows or columns: groups of 4, half a tile apart when 8. */
const lanes = (count: number, tileSize: number, index: string): string[] => (count === 4 ? [`${index} * 4u`] : [`${index} * 4u`, `${index} * 4u + ${tileSize / 2}u`]);

/**
 * WGSL of the kernel for `tile`: bindings a, b (read), c (read_write), dims (uniform: gemmUniform).
 * Transposed operands change only how a slice is read: A stored [K, M] is read as vec4s of m and
 * stored into As as they are; B stored [N, K] is read as vec4s of k and stored transposed.
 */
export function gemmShader(t: GemmTile, transposes: { transposeA?: boolean; transposeB?: boolean } = {}): string {
  const tA = transposes.transposeA === true, tB = transposes.transposeB === true;
  const threads = t.wgX * t.wgY;
  const aLoads = (t.bm * t.bk) / 4 / threads; // vec4s of A a thread moves a slice
  const bLoads = (t.bk * t.bn) / 4 / threads;
  const rowGroups = lanes(t.tm, t.bm, "ty"), colGroups = lanes(t.tn, t.bn, "tx");
  const aStage = (t.bk * t.bm) / 4, bStage = (t.bk * t.bn) / 4; // vec4s a slice takes in workgroup memory
  const L: string[] = [
    "struct Dims { m : u32, n : u32, k : u32, tilesM : u32, bBatch4 : u32 }",
    "@group(0) @binding(0) var<storage, read> a : array<vec4<f32>>;",
    "@group(0) @binding(1) var<storage, read> b : array<vec4<f32>>;",
    "@group(0) @binding(2) var<storage, read_write> c : array<vec4<f32>>;",
    "@group(0) @binding(3) var<uniform> dims : Dims;",
    `var<workgroup> As : array<vec4<f32>, ${aStage * (t.double ? 2 : 1)}>;`,
    `var<workgroup> Bs : array<vec4<f32>, ${bStage * (t.double ? 2 : 1)}>;`,
    `@compute @workgroup_size(${t.wgX}, ${t.wgY})`,
    "fn main(@builtin(workgroup_id) wg : vec3u, @builtin(local_invocation_id) lid : vec3u, @builtin(local_invocation_index) tid : u32) {",
    "  let tx = lid.x;",
    "  let ty = lid.y;",
    "  let batch = wg.y / dims.tilesM;",
    `  let row0 = (wg.y % dims.tilesM) * ${t.bm}u;`,
    `  let col0 = wg.x * ${t.bn}u;`,
    "  let k4 = dims.k / 4u;",
    "  let n4 = dims.n / 4u;",
    "  let m4 = dims.m / 4u;",
    "  let aBase = batch * dims.m * k4;",
    "  let bBase = batch * dims.bBatch4;",
    "  let cBase = batch * dims.m * n4;",
  ];
  for (let r = 0; r < t.tm; r++) for (let g = 0; g < colGroups.length; g++) L.push(`  var acc_${r}_${g} = vec4<f32>(0.0);`);
  // which vec4 of a slice each thread moves: untransposed A and transposed B by (row, vec4 of k);
  // transposed A and untransposed B by (k, vec4 of columns)
  for (let i = 0; i < aLoads; i++) {
    L.push(`  let aIdx${i} = tid + ${i * threads}u;`);
    if (tA) L.push(`  let aK${i} = aIdx${i} / ${t.bm / 4}u;`, `  let aM${i} = aIdx${i} % ${t.bm / 4}u;`);
    else if (t.rowMajorA) L.push(`  let aM${i} = aIdx${i} % ${t.bm}u;`, `  let aK${i} = aIdx${i} / ${t.bm}u;`);
    else L.push(`  let aM${i} = aIdx${i} / ${t.bk / 4}u;`, `  let aK${i} = aIdx${i} % ${t.bk / 4}u;`);
  }
  for (let i = 0; i < bLoads; i++) {
    L.push(`  let bIdx${i} = tid + ${i * threads}u;`);
    if (tB) L.push(`  let bN${i} = bIdx${i} / ${t.bk / 4}u;`, `  let bK${i} = bIdx${i} % ${t.bk / 4}u;`);
    else L.push(`  let bK${i} = bIdx${i} / ${t.bn / 4}u;`, `  let bN${i} = bIdx${i} % ${t.bn / 4}u;`);
  }
  for (let i = 0; i < aLoads; i++) L.push(`  var pa${i} : vec4<f32>;`);
  for (let i = 0; i < bLoads; i++) L.push(`  var pb${i} : vec4<f32>;`);
  const fetch = (k0: string): string[] => [
    ...Array.from({ length: aLoads }, (_, i) => (tA
      ? `    pa${i} = a[aBase + ((${k0}) + aK${i}) * m4 + row0 / 4u + aM${i}];`
      : `    pa${i} = a[aBase + (row0 + aM${i}) * k4 + (${k0}) / 4u + aK${i}];`)),
    ...Array.from({ length: bLoads }, (_, i) => (tB
      ? `    pb${i} = b[bBase + (col0 + bN${i}) * k4 + (${k0}) / 4u + bK${i}];`
      : `    pb${i} = b[bBase + ((${k0}) + bK${i}) * n4 + col0 / 4u + bN${i}];`)),
  ];
  // the registers into slice `s` of workgroup memory: As is [k][m] and Bs [k][n], in vec4s of m and n
  const stage = (s: string): string[] => [
    ...Array.from({ length: aLoads }, (_, i) => (tA
      ? [`    As[${s} * ${aStage}u + aK${i} * ${t.bm / 4}u + aM${i}] = pa${i};`]
      : [0, 1, 2, 3].map((q) => `    As[${s} * ${aStage}u + ((aK${i} * 4u + ${q}u) * ${t.bm}u + aM${i}) / 4u][aM${i} % 4u] = pa${i}[${q}];`))).flat(),
    ...Array.from({ length: bLoads }, (_, i) => (tB
      ? [0, 1, 2, 3].map((q) => `    Bs[${s} * ${bStage}u + ((bK${i} * 4u + ${q}u) * ${t.bn}u + bN${i}) / 4u][bN${i} % 4u] = pb${i}[${q}];`)
      : [`    Bs[${s} * ${bStage}u + bK${i} * ${t.bn / 4}u + bN${i}] = pb${i};`])).flat(),
  ];
  // one k of the slice: kk is the loop's variable, or a literal when unrolled (each step in a block of its own)
  const step = (s: string, kk: string): string[] => {
    const out: string[] = [];
    rowGroups.forEach((off, g) => out.push(`      let av${g} = As[${s} * ${aStage}u + (${kk} * ${t.bm}u + ${off}) / 4u];`));
    colGroups.forEach((off, g) => out.push(`      let bv${g} = Bs[${s} * ${bStage}u + (${kk} * ${t.bn}u + ${off}) / 4u];`));
    for (let r = 0; r < t.tm; r++) {
      for (let g = 0; g < colGroups.length; g++) out.push(`      acc_${r}_${g} = fma(vec4<f32>(av${r >> 2}[${r & 3}]), bv${g}, acc_${r}_${g});`);
    }
    return out;
  };
  const multiply = (s: string): string[] =>
    t.unroll
      ? Array.from({ length: t.bk }, (_, kk) => ["    {", ...step(s, `${kk}u`), "    }"]).flat()
      : [`    for (var kk = 0u; kk < ${t.bk}u; kk++) {`, ...step(s, "kk"), "    }"];
  const indent = (lines: string[]) => lines.map((x) => `  ${x}`);
  const more = `k0 + ${t.bk}u < dims.k`; // uniform: every thread agrees, so the barriers stay in uniform control flow
  if (t.double) {
    // slice i in stage i % 2; one barrier a slice: the stores into the other stage wait for nobody,
    // every thread having passed the barrier after multiplying the slice that was there
    L.push("  {", ...fetch("0u"), ...stage("0u"), "  }", "  workgroupBarrier();");
    L.push(`  for (var k0 = 0u; k0 < dims.k; k0 += ${t.bk}u) {`, `    let cur = (k0 / ${t.bk}u) % 2u;`);
    L.push(`    if (${more}) {`, ...indent(fetch(`k0 + ${t.bk}u`)), "    }", ...multiply("cur"));
    L.push(`    if (${more}) {`, ...indent(stage("(1u - cur)")), "    }", "    workgroupBarrier();", "  }");
  } else {
    if (t.prefetch) L.push("  {", ...fetch("0u"), "  }");
    L.push(`  for (var k0 = 0u; k0 < dims.k; k0 += ${t.bk}u) {`);
    if (!t.prefetch) L.push(...fetch("k0"));
    L.push(...stage("0u"), "    workgroupBarrier();");
    if (t.prefetch) L.push(`    if (${more}) {`, ...indent(fetch(`k0 + ${t.bk}u`)), "    }");
    L.push(...multiply("0u"), "    workgroupBarrier();", "  }");
  }
  for (let r = 0; r < t.tm; r++) {
    const row = `row0 + ${rowGroups[r >> 2]} + ${r & 3}u`;
    colGroups.forEach((off, g) => L.push(`  c[cBase + (${row}) * n4 + (col0 + ${off}) / 4u] = acc_${r}_${g};`));
  }
  L.push("}");
  return L.join("\n");
}
