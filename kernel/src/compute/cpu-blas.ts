/**
 * Float32 matrix products through the machine's BLAS (oneDNN or OpenBLAS), where
 * one is installed and the addon was built (`npm run setup` builds
 * kernel/native/cpu-blas.cc with g++ when it can). The wasm backend's matMul
 * (wasm/batch-mat-mul.ts) uses it in place of the WebAssembly SIMD kernel:
 * on a core with AVX-512 a BLAS does about 3.5x the FLOP/s (docs/compute.md).
 *
 * Environment (read once per thread, at the first product):
 *   DISTLAB_CPU_BLAS          unset: oneDNN (libdnnl.so.3 or .so.2), else OpenBLAS (libopenblas.so.0 or .so),
 *                             else the wasm kernel. oneDNN first: it generates its products for the core it
 *                             runs on, where an OpenBLAS older than the CPU falls back to SSE3 kernels, and
 *                             it measured faster on the MLP's products even against OpenBLAS's AVX-512 ones.
 *                             `off`: the wasm kernel always; a path: that CBLAS or oneDNN library (an error
 *                             if it cannot load)
 *   DISTLAB_CPU_BLAS_THREADS  the library's threads a product, default 1 (a rank is one thread, as
 *                             PyTorch's one-thread baseline is). OpenBLAS's pool is one per process;
 *                             oneDNN's OpenMP threads are set for each rank's thread.
 *
 * The operands are the TF.js wasm heap's own memory, read and written in place:
 * no copies (the wasm kernel copies each operand into its memory first).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Operand, ProductShape } from "./wasm/gemm";

/** What kernel/native/cpu-blas.cc exports. */
interface CpuBlasAddon {
  open(library: string): OpenedLibrary;
  /** sets the calling thread's product threads; the count read back from the library, or null where it has no setting */
  setThreads(threads: number): number | null;
  sgemm(transA: boolean, transB: boolean, m: number, n: number, k: number, a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number, beta: number): void;
  causalAttention(qkv: Float32Array, out: Float32Array, probs: Float32Array, time: number, heads: number, scale: number): void;
  causalAttentionGrad(qkv: Float32Array, probs: Float32Array, dy: Float32Array, dqkv: Float32Array, time: number, heads: number, scale: number): void;
}

/** What open() says of the library it loaded. */
interface OpenedLibrary {
  library: string;
  /** `cblas`: cblas_sgemm (OpenBLAS and other CBLAS libraries); `onednn`: dnnl_sgemm */
  kind: "cblas" | "onednn";
  /** the build description: OpenBLAS's (with its kernels' target), or "oneDNN 2.6.3 (OpenMP)" */
  config?: string;
}

/** Where `npm run setup` puts the addon (kernel/native/build), from src/compute or dist/compute alike. */
export const ADDON_PATH = path.join(__dirname, "..", "..", "native", "build", "cpu-blas.node");

/** Libraries tried in order when DISTLAB_CPU_BLAS is unset: oneDNN, then OpenBLAS, as Debian and most distributions name them. */
const DEFAULT_LIBRARIES = ["libdnnl.so.3", "libdnnl.so.2", "libopenblas.so.0", "libopenblas.so"];

export class CpuBlas {
  /** products this instance ran (for tests and diagnostics: which kernel a matMul took) */
  products = 0;

  constructor(
    private readonly addon: CpuBlasAddon,
    /** the library's path or soname */
    readonly library: string,
    /** which entry point its products go through */
    readonly kind: OpenedLibrary["kind"],
    /** the library's build description (OpenBLAS: its kernels' target), when it says */
    readonly config: string | undefined,
    readonly threads: number,
  ) {}

  /**
   * out[out.offset ..][m, n] = op(a) op(b) + bias, bias [n] or none: the contract of
   * WasmGemm.multiply (wasm/gemm.ts). A bias is written into every row of out first, and the
   * product added to it (beta = 1).
   */
  multiply(a: Operand, b: Operand, out: Operand, shape: ProductShape, bias?: Operand): void {
    const { m, k, n, transposeA, transposeB } = shape;
    if (m === 0 || n === 0) return;
    if (bias) {
      const row = bias.data.subarray(bias.offset, bias.offset + n);
      for (let i = 0; i < m; i++) out.data.set(row, out.offset + i * n);
    }
    this.addon.sgemm(transposeA, transposeB, m, n, k, a.data, a.offset, b.data, b.offset, out.data, out.offset, bias ? 1 : 0);
    this.products++;
  }

  /**
   * Causal self-attention from the packed projection (kernel/native/cpu-attention.cc): qkv [rows, 3C]
   * (rows = batch * time, C = heads * hs) -> out [rows, C]; probs [batch * heads, time, time] keeps
   * the softmax weights for the gradient.
   */
  attention(qkv: Float32Array, out: Float32Array, probs: Float32Array, time: number, heads: number, scale: number): void {
    this.addon.causalAttention(qkv, out, probs, time, heads, scale);
  }

  /** dqkv [rows, 3C] from the forward's qkv and probs and the output's gradient dy [rows, C]. */
  attentionGrad(qkv: Float32Array, probs: Float32Array, dy: Float32Array, dqkv: Float32Array, time: number, heads: number, scale: number): void {
    this.addon.causalAttentionGrad(qkv, probs, dy, dqkv, time, heads, scale);
  }
}

/**
 * OpenBLAS's kernel targets older than AVX2, by the names its build description uses: what a
 * DYNAMIC_ARCH build falls back to for a CPU model it does not know (Debian 12's 0.3.21 takes
 * Emerald Rapids for Prescott, SSE3: 4-5x slower products than its AVX-512 kernels).
 */
const PRE_AVX2_OPENBLAS_CORE = /\b(Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Coppermine|Northwood|Banias|Sandybridge|Generic)\b/i;

/**
 * Where OpenBLAS (`config`: its openblas_get_config()) runs pre-AVX2 kernels on a core that has AVX2
 * or AVX-512 (`isa`: cpu-vector.ts's isa()): the target it took and the OPENBLAS_CORETYPE that fits
 * the core. Undefined where its kernels fit, or either is unknown.
 */
export function openblasMisfit(config: string | undefined, isa: string | undefined): { took: string; coreType: string } | undefined {
  const took = config?.match(PRE_AVX2_OPENBLAS_CORE)?.[1];
  const coreType = isa === "avx512f" ? "SkylakeX" : isa === "avx2" ? "Haswell" : undefined;
  return took && coreType ? { took, coreType } : undefined;
}

/** The thread's BLAS, or null once it was found unavailable (the reason in `missingReason`). */
let perThread: CpuBlas | null | undefined;
let missingReason: string | undefined;

/** The BLAS this thread's products use, or undefined (then cpuBlasMissingReason() says why). Throws on a bad DISTLAB_CPU_BLAS or _THREADS. */
export function cpuBlas(env: NodeJS.ProcessEnv = process.env): CpuBlas | undefined {
  if (perThread === undefined) {
    const found = openCpuBlas(env);
    perThread = "missing" in found ? null : found;
    missingReason = "missing" in found ? found.missing : undefined;
  }
  return perThread ?? undefined;
}

/** Why cpuBlas() is undefined on this thread (undefined while it is not, or before the first call). */
export function cpuBlasMissingReason(): string | undefined {
  return missingReason;
}

/**
 * Loads the addon and a BLAS as `env` asks: a CpuBlas, or `{missing}` saying why there is none.
 * Not memoised (tests call it with several environments); cpuBlas() is.
 */
export function openCpuBlas(env: NodeJS.ProcessEnv, addonPath = ADDON_PATH): CpuBlas | { missing: string } {
  const choice = env.DISTLAB_CPU_BLAS?.trim();
  if (choice === "off") return { missing: "DISTLAB_CPU_BLAS=off" };
  const threads = threadsFrom(env.DISTLAB_CPU_BLAS_THREADS);
  if (!fs.existsSync(addonPath)) {
    const why = `the native addon ${addonPath} is not built (npm run setup builds it where g++ and Node's headers are installed)`;
    if (choice) throw new Error(`DISTLAB_CPU_BLAS=${choice}: ${why}`);
    return { missing: why };
  }
  const addon = require(addonPath) as CpuBlasAddon;
  if (choice) {
    let info: OpenedLibrary;
    try {
      info = addon.open(choice);
    } catch (error) {
      throw new Error(`DISTLAB_CPU_BLAS=${choice}: ${(error as Error).message}`);
    }
    return opened(addon, info, threads, `DISTLAB_CPU_BLAS=${choice}`);
  }
  const failures: string[] = [];
  for (const library of DEFAULT_LIBRARIES) {
    try {
      return opened(addon, addon.open(library), threads, library);
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  return { missing: `no BLAS library found (${failures.join("; ")}); install oneDNN or OpenBLAS (Debian: libdnnl2 or libopenblas0) or set DISTLAB_CPU_BLAS to a CBLAS or oneDNN library's path` };
}

function opened(addon: CpuBlasAddon, info: OpenedLibrary, threads: number, asked: string): CpuBlas {
  const applied = addon.setThreads(threads);
  if (applied === null && threads !== 1) {
    throw new Error(`DISTLAB_CPU_BLAS_THREADS=${threads}: ${asked} has no thread setting (openblas_set_num_threads or OpenMP's); set its own thread variable instead`);
  }
  if (applied !== null && applied !== threads) {
    throw new Error(`DISTLAB_CPU_BLAS_THREADS=${threads}: ${asked} runs ${applied} thread${applied === 1 ? "" : "s"} instead (its limit)`);
  }
  return new CpuBlas(addon, info.library, info.kind, info.config, threads);
}

function threadsFrom(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 1;
  const threads = Number(value);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`DISTLAB_CPU_BLAS_THREADS must be an integer >= 1, got ${JSON.stringify(value)}`);
  return threads;
}
