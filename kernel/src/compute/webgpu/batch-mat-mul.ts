/**
 * BatchMatMul for TF.js's webgpu backend with larger tiles for large
 * products, and distlab's register-blocked kernel (register-gemm.ts) for the
 * float32 products of whole tiles it takes (the rest keep TF.js's shader).
 *
 * TF.js computes a large matMul with its packed vec4 shader and a fixed
 * 32x32 output tile per workgroup (8x8 threads, 4x4 outputs each), a size
 * chosen for 16 KiB of workgroup memory. On a large GPU that stays far
 * below PyTorch's f32 product (docs/compute.md, "Figures behind the
 * code"): each value loaded into workgroup memory is used by too few
 * multiply-adds. The same shader
 * template takes other tile shapes; this kernel runs the stock kernel but
 * retunes its packed program before it is compiled: workgroup
 * [tileX, tileY] threads, each computing 4 x rowsPerThread outputs
 * (the template requires 4 columns per thread).
 *
 * It works on the program object because the package's public build does
 * not export the program class; the program is only retuned when it is the
 * packed vec4 form without transposed A (the template's constraints), and
 * its shader cache key names the tile, so retuned and stock shaders never
 * mix.
 *
 * TF.js internals it relies on (pinned version; ../tfjs-internals.ts checks
 * each): MatMulPackedProgram's fields and shaderKey format (rebuilt here
 * with the tile appended), its getShapeFit, webgpu_util.computeDispatch, and
 * runWebGPUProgram's arguments (uniforms[2] holds dimInner).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs";
import { constantUniform, hasDispatchInternals, newOutput, pipelineFor, recordDispatch } from "./dispatch";
import { DEFAULT_GEMM_TILES, gemmGroups, gemmPlan, gemmShaderFor, gemmUniform, parseGemmTiles, type GemmTile } from "./register-gemm";

export interface MatMulTile {
  /** Threads per workgroup along output columns and rows. */
  threads: [number, number];
  /** Output rows per thread (columns per thread are 4). */
  rowsPerThread: number;
  /** Retune only products with at least this many outputs (M * N per batch). */
  minOutputs: number;
}

/**
 * 128 x 64 outputs per workgroup (16 x 16 threads, 8 x 4 each; 48 KiB of
 * workgroup memory): the best of the tile sweep of bench/gpu/webgpu-bench.ts
 * from 2048 to 8192 (its figures: git log -p docs/benchmarks.md). Products under 1024 x
 * 1024 outputs keep TF.js's choice, which also picks split-K and small-tile
 * programs there.
 */
export const DEFAULT_TILE: MatMulTile = { threads: [16, 16], rowsPerThread: 8, minOutputs: 1024 * 1024 };

/** DISTLAB_WEBGPU_MATMUL_TILE="16x16:4" (threads x, threads y : rows per thread), "stock" to keep TF.js's. */
export function tileFromEnv(value: string | undefined, fallback: MatMulTile = DEFAULT_TILE): MatMulTile | undefined {
  if (value === undefined || value === "") return fallback;
  if (value === "stock") return undefined;
  const match = /^(\d+)x(\d+):(\d+)$/.exec(value);
  if (!match) throw new RangeError(`DISTLAB_WEBGPU_MATMUL_TILE must look like 16x16:4 or be "stock", got ${value}`);
  return { threads: [Number(match[1]), Number(match[2])], rowsPerThread: Number(match[3]), minOutputs: fallback.minOutputs };
}

interface PackedProgram {
  shaderKey: string;
  isVec4?: boolean;
  isVectorA?: boolean;
  transposeA: boolean;
  transposeB: boolean;
  activation: unknown;
  sequentialAccessByThreads: boolean;
  outputShape: number[];
  dispatchLayout: unknown;
  dispatch: number[];
  workgroupSize: number[];
  elementsPerThread: number[];
  fitAOuter: boolean;
  fitBOuter: boolean;
  fitInner: boolean;
  getShapeFit(dimAOuter: number, dimBOuter: number, dimInner: number): [boolean, boolean, boolean];
}

interface WebGpuBackendLike {
  runWebGPUProgram(program: object, inputs: TensorInfo[], dtype: string, uniforms?: { type: string; data: number[] }[], output?: TensorInfo): TensorInfo;
}

type ComputeDispatch = (layout: unknown, outputShape: number[], workgroupSize: number[], elementsPerThread: number[]) => number[];

/** Retunes `program` in place when it is a packed vec4 matMul the tile applies to; returns whether it did. */
export function retune(program: PackedProgram, uniforms: { data: number[] }[] | undefined, tile: MatMulTile, computeDispatch: ComputeDispatch): boolean {
  if (!program.shaderKey.startsWith("matMulPacked_") || !program.isVec4 || program.isVectorA || program.transposeA) return false;
  const [, rows, columns] = program.outputShape as [number, number, number];
  if (rows * columns < tile.minOutputs || uniforms === undefined || uniforms.length < 3) return false;
  const dimInner = uniforms[2]!.data[0]!;
  program.workgroupSize = [tile.threads[0], tile.threads[1], 1];
  program.elementsPerThread = [4, tile.rowsPerThread, 1];
  program.dispatch = computeDispatch(program.dispatchLayout, program.outputShape, program.workgroupSize, program.elementsPerThread);
  [program.fitAOuter, program.fitBOuter, program.fitInner] = program.getShapeFit(rows, columns, dimInner);
  program.shaderKey = `matMulPacked_${program.elementsPerThread}_${program.transposeA}_${program.transposeB}_${program.activation}_${program.fitAOuter}_${program.fitBOuter}_${program.fitInner}_true_false_${program.sequentialAccessByThreads}_distlab${tile.threads.join("x")}`;
  return true;
}

/** distlab's register-blocked kernel (register-gemm.ts) for the BatchMatMul products it takes. */
export interface GemmOption {
  /** the tiles a product may run on, in order of preference (register-gemm.ts, gemmPlan) */
  tiles: readonly GemmTile[];
  /** products with fewer outputs a batch run TF.js's kernel (its split-K and small tiles fit them better) */
  minOutputs: number;
  /** TF.js's WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE */
  submitEvery: () => number;
}

/**
 * DISTLAB_WEBGPU_GEMM: tiles in order of preference, comma-separated (register-gemm.ts,
 * parseGemmTile), or "off" for TF.js's shader everywhere; default DEFAULT_GEMM_TILES.
 */
export function gemmTilesFromEnv(value: string | undefined): GemmTile[] | undefined {
  if (value === "off") return undefined;
  try {
    return parseGemmTiles(value === undefined || value === "" ? DEFAULT_GEMM_TILES : value);
  } catch (error) {
    throw new RangeError(`DISTLAB_WEBGPU_GEMM: ${(error as Error).message}, or "off"`);
  }
}

/** Products this process ran on the register-blocked kernel, in all and by tile (a diagnostic: benches print it to show which path ran). */
export const gemmCounts = {
  byTile: {} as Record<string, number>,
  get products(): number {
    return Object.values(this.byTile).reduce((sum, count) => sum + count, 0);
  },
};

/** C = op(A) op(B) with the register-blocked kernel, or undefined when it does not take this product (or the backend lacks the internals). */
function runGemm(args: Parameters<KernelFunc>[0], gemm: GemmOption): TensorInfo | undefined {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const plan = gemmPlan(a, b, transposeA, transposeB, gemm.tiles, gemm.minOutputs);
  const backend = args.backend as unknown as object;
  if (!plan || !hasDispatchInternals(backend)) return undefined;
  const { tile, shape } = plan;
  const outShape = a.shape.length === 3 || b.shape.length === 3 ? [shape.batch, shape.m, shape.n] : [shape.m, shape.n];
  const out = newOutput(backend, outShape) as TensorInfo;
  const pipeline = pipelineFor(backend.device, gemmShaderFor(tile, shape));
  const dims = constantUniform(backend.device, gemmUniform(shape, tile));
  recordDispatch(backend, pipeline, [a, b, out, { buffer: dims }], gemmGroups(shape, tile), gemm.submitEvery(), "DistlabGemm");
  gemmCounts.byTile[tile.name] = (gemmCounts.byTile[tile.name] ?? 0) + 1;
  return out;
}

function withRetunedPrograms(kernelName: string, stock: KernelFunc, tile: MatMulTile, computeDispatch: ComputeDispatch, gemm?: GemmOption): KernelConfig {
  const kernelFunc = (args: Parameters<KernelFunc>[0]) => {
    const ours = gemm && kernelName === "BatchMatMul" ? runGemm(args, gemm) : undefined;
    if (ours) return ours;
    const backend = args.backend as unknown as WebGpuBackendLike;
    const run = backend.runWebGPUProgram;
    backend.runWebGPUProgram = function (program, inputs, dtype, uniforms, output) {
      retune(program as PackedProgram, uniforms, tile, computeDispatch);
      return run.call(this, program, inputs, dtype, uniforms, output);
    };
    try {
      return stock(args);
    } finally {
      backend.runWebGPUProgram = run;
    }
  };
  return { kernelName, backendName: "webgpu", kernelFunc: kernelFunc as KernelFunc };
}

/**
 * BatchMatMul and _FusedMatMul on TF.js's shader retuned to `tile`; with `gemm`, BatchMatMul's
 * float32 products of whole tiles (transposed operands too) run the register-blocked kernel instead.
 */
export function batchMatMulOverrides(
  stockKernel: (name: string) => KernelFunc, tile: MatMulTile, computeDispatch: ComputeDispatch, gemm?: GemmOption,
): KernelConfig[] {
  return ["BatchMatMul", "_FusedMatMul"].map((name) => withRetunedPrograms(name, stockKernel(name), tile, computeDispatch, gemm));
}
