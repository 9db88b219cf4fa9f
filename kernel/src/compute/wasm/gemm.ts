/**
 * Float32 matrix products on the CPU through gemm-module.ts's SIMD kernel.
 *
 * `multiply(a, b, out, shape)` computes out[m, n] = op(a) op(b) (+ bias),
 * op = transpose or not, on plain Float32Arrays (views of the TF.js wasm
 * heap in practice). The operands are brought into the kernel's own memory
 * in one pass each (a memmove, or a repacking for a transposed operand), so
 * a transposed operand costs about what a plain one does, which is what
 * backprop needs (dW = x^T dy, dx = dy W^T). The result is copied out in
 * one pass.
 *
 * Through tf.matMul it is faster than TF.js wasm's own product (XNNPACK,
 * which has no transposed path), and slower again with separate multiply
 * and add instead of relaxed SIMD's fused multiply-add (figures:
 * docs/compute.md, "Figures behind the code"; bench/compute.mjs has
 * the step times).
 *
 * One instance per thread (each rank worker has its own); its memory grows
 * to the largest product seen and stays (a tiny GPT step needs about 3 MiB).
 */
import { Wasm, type WasmMemory } from "../../comm/wasm-api";
import { RELAXED_SIMD_FLAG, relaxedSimdCompiles } from "../../v8-start-flags";
import { gemmModuleBytes } from "./gemm-module";

/** The register tile: 4 rows x 8 columns, the best of a sweep of tile shapes (docs/compute.md, "Figures behind the code"). */
const MR = 4;
const NR = 8;
const PAGE = 65536;
/**
 * Steps of k per kernel call. With all of k in one call, a tile's walk down
 * B's panel (and A's block) outgrows L1 for k of 512 and more, and the next
 * tile reads it from L2 again. Slices of 256 were the fastest of those
 * tried (docs/compute.md, "Figures behind the code").
 */
const K_SLICE = 256;

export interface ProductShape {
  m: number;
  k: number;
  n: number;
  /** a is stored [k, m] rather than [m, k]. */
  transposeA: boolean;
  /** b is stored [n, k] rather than [k, n]. */
  transposeB: boolean;
}

/** One operand: `data` from float `offset` on (a batch of a batched product, or a whole tensor). */
export interface Operand {
  data: Float32Array;
  offset: number;
}

/**
 * Why the kernel cannot use f32x4.relaxed_madd here, or undefined when it can. The V8 flag Node 20
 * needs is set when the process starts (v8-start-flags.ts), never from here at run time.
 */
function fmaMissingReason(env: NodeJS.ProcessEnv): string | undefined {
  if (env.DISTLAB_WASM_FMA === "0") return "DISTLAB_WASM_FMA=0";
  if (relaxedSimdCompiles()) return undefined;
  return `this Node ${process.version} compiles relaxed SIMD only when started with ${RELAXED_SIMD_FLAG} (the kernelspec and process ranks are; Node 22 needs no flag)`;
}

/** The exported kernel (gemm-module.ts): byte offsets and strides, block and panel counts, k. */
type GemmFunction = (a: number, aRow: number, aK: number, b: number, bPanel: number, bK: number, c: number, ldc: number, bias: number, mBlocks: number, nPanels: number, k: number, accumulate: number, aBlock: number) => void;
/** The exported packing of A stored transposed into blocks of MR = 4 rows (gemm-module.ts). */
type PackQuadsFunction = (src: number, srcStride: number, dst: number, quads: number, k: number) => void;

export class WasmGemm {
  /** Whether the kernel uses fused multiply-adds (relaxed SIMD). */
  readonly fma: boolean;
  /** Why it does not, when it does not. */
  readonly fmaMissing?: string;
  readonly #run: GemmFunction;
  readonly #packQuads: PackQuadsFunction;
  readonly #memory: WasmMemory;
  #heap: Float32Array;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.fmaMissing = fmaMissingReason(env);
    this.fma = this.fmaMissing === undefined;
    // Its own memory (not TF.js's heap, which the fused kernels import): operands are laid out afresh
    // per product, with padding the kernel may read.
    this.#memory = new Wasm.Memory({ initial: 16 });
    const instance = new Wasm.Instance(new Wasm.Module(gemmModuleBytes({ mr: MR, nr: NR, fma: this.fma })), { env: { memory: this.#memory } });
    this.#run = instance.exports.gemm as GemmFunction;
    this.#packQuads = instance.exports.packQuads as PackQuadsFunction;
    this.#heap = new Float32Array(this.#memory.buffer as ArrayBuffer);
  }

  /**
   * out[outOffset ..][m, n] = op(a) op(b) + bias, bias [n] or none. Where
   * `bReady` is true, b (and the bias) are the previous call's and are not
   * brought in again (a batched product whose right operand is shared).
   *
   * Each operand is copied into the kernel's memory as it lies (one
   * memmove) and read there with strides, a transposed A included; only a
   * transposed B is repacked, into panels of NR columns (backprop's dy W^T:
   * B is a weight matrix, the smaller operand).
   */
  multiply(a: Operand, b: Operand, out: Operand, shape: ProductShape, bias?: Operand, bReady = false): void {
    const { m, k, n, transposeA, transposeB } = shape;
    if (m === 0 || n === 0) return;
    if (k === 0) {
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out.data[out.offset + i * n + j] = bias ? bias.data[bias.offset + j]! : 0;
      return;
    }
    const mBlocks = Math.ceil(m / MR), nPanels = Math.ceil(n / NR);
    const ldc = nPanels * NR; // floats per row of the padded result
    // Rows of A's and B's storage are copied at a pitch that spreads them over the cache's sets (see pitch).
    const aRows = transposeA ? k : m, aCols = transposeA ? m : k, aPitch = pitch(aRows, aCols);
    const bPitch = pitch(k, n);
    // Float offsets in the kernel's memory, each 16-byte aligned: [bias | B | A | C]. B and A have room
    // after them for the rows and columns past m and n that the kernel reads (their results are dropped).
    const biasAt = 4, bAt = align(biasAt + ldc), aAt = align(bAt + (transposeB ? nPanels * NR * k : k * bPitch + NR));
    // A stored transposed is then packed into blocks (packedAt), see below.
    const packedAt = align(aAt + aRows * aPitch + MR * aPitch);
    const cAt = transposeA ? packedAt + mBlocks * MR * k : packedAt;
    this.#reserve((cAt + mBlocks * MR * ldc) * 4);
    const heap = this.#heap;
    if (!bReady) {
      if (bias) {
        heap.set(bias.data.subarray(bias.offset, bias.offset + n), biasAt);
        heap.fill(0, biasAt + n, biasAt + ldc);
      }
      if (transposeB) packTransposedB(heap, bAt, b, k, n, nPanels);
      else copyRows(heap, bAt, bPitch, b, k, n);
    }
    copyRows(heap, aAt, aPitch, a, aRows, aCols);
    // A stored transposed ([k, m]) holds each step's MR values of a block side by side, but one step per
    // cache line: a block's walk down k touches k lines. Packed into blocks ([mBlocks][k][MR]) the walk is
    // sequential, which made the tiny GPT's x^T dy products faster (docs/compute.md, "Figures behind the code").
    if (transposeA) this.#packQuads(aAt * 4, aPitch * 4, packedAt * 4, mBlocks, k);
    const aBase = transposeA ? packedAt : aAt;
    const aRowBytes = transposeA ? 4 : 4 * aPitch, aKBytes = transposeA ? 16 : 4, aBlockBytes = transposeA ? 16 * k : MR * aRowBytes;
    const bPanelBytes = transposeB ? 4 * NR * k : 4 * NR, bKBytes = transposeB ? 4 * NR : 4 * bPitch;
    // k in slices of K_SLICE: each slice's rows of A's and B's storage stay in cache across the tiles that reuse them.
    for (let k0 = 0; k0 < k; k0 += K_SLICE) {
      this.#run(
        aBase * 4 + k0 * aKBytes, aRowBytes, aKBytes,
        bAt * 4 + k0 * bKBytes, bPanelBytes, bKBytes,
        cAt * 4, ldc * 4, bias ? biasAt * 4 : 0, mBlocks, nPanels, Math.min(K_SLICE, k - k0), k0 > 0 ? 1 : 0, aBlockBytes,
      );
    }
    if (ldc === n) {
      out.data.set(heap.subarray(cAt, cAt + m * n), out.offset);
    } else {
      for (let i = 0; i < m; i++) out.data.set(heap.subarray(cAt + i * ldc, cAt + i * ldc + n), out.offset + i * n);
    }
  }

  #reserve(bytes: number): void {
    const have = this.#memory.buffer.byteLength;
    if (bytes <= have) return;
    this.#memory.grow(Math.ceil((bytes - have) / PAGE));
    this.#heap = new Float32Array(this.#memory.buffer as ArrayBuffer);
  }
}

/** The next multiple of 4 floats (16 bytes). */
const align = (floats: number) => (floats + 3) & ~3;

/**
 * Floats between the copied rows of a rows x cols operand: cols, aligned,
 * and for operands larger than the L1 cache never a multiple of 64 bytes.
 * The kernel walks A and B down their rows; at a stride of a power of two
 * bytes (a row of 512 floats is 2 KiB) every step falls in the same few
 * sets of the cache and evicts the lines the next tile reuses, which nearly
 * halved the speed of 768x128 . 128x512 (docs/compute.md, "Figures
 * behind the code"). Small operands (an
 * attention head's 64 x 32) stay in L1 whatever their stride, and copy in
 * one piece.
 */
function pitch(rows: number, cols: number): number {
  const aligned = align(cols);
  return aligned % 16 === 0 && rows * aligned > L1_FLOATS ? aligned + 4 : aligned;
}

/** 32 KiB of floats: the L1 data cache of the x86 cores distlab runs on is 32-48 KiB. */
const L1_FLOATS = 8192;

/** heap[at + r * rowPitch ..][cols] = src's rows (rows x cols, row-major from its offset). */
function copyRows(heap: Float32Array, at: number, rowPitch: number, src: Operand, rows: number, cols: number): void {
  if (rowPitch === cols) {
    heap.set(src.data.subarray(src.offset, src.offset + rows * cols), at);
    return;
  }
  for (let r = 0, s = src.offset; r < rows; r++, s += cols) heap.set(src.data.subarray(s, s + cols), at + r * rowPitch);
}

/**
 * heap[at ..] = B, stored transposed ([n, k]), in panels of NR columns,
 * k-major: [nPanels][k][NR]; columns past n zero.
 */
function packTransposedB(heap: Float32Array, at: number, b: Operand, k: number, n: number, nPanels: number): void {
  const src = b.data, base = b.offset;
  for (let panel = 0; panel < nPanels; panel++) {
    const dst = at + panel * k * NR;
    for (let j = 0; j < NR; j++) {
      const col = panel * NR + j;
      if (col >= n) {
        for (let kk = 0; kk < k; kk++) heap[dst + kk * NR + j] = 0;
        continue;
      }
      // column col of B is row col of the storage
      for (let kk = 0, s = base + col * k; kk < k; kk++, s++) heap[dst + kk * NR + j] = src[s]!;
    }
  }
}

let perThread: WasmGemm | undefined;

/** This thread's kernel, made on first use. */
export function wasmGemm(): WasmGemm {
  return (perThread ??= new WasmGemm());
}
