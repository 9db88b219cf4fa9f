/**
 * V8 flags distlab's Node processes need from their start.
 *
 * Relaxed SIMD (f32x4.relaxed_madd, the fused multiply-add of the wasm
 * matMul kernel, compute/wasm/gemm.ts) is standard WebAssembly 3.0 and on
 * by default from Node 22 (V8 12.4); Node 20 (V8 11.3) keeps it behind
 * `--experimental-wasm-relaxed-simd`. Where Node takes that flag:
 *
 * - on the `node` command line: yes. So the kernelspec starts the kernel
 *   with it (install.ts), and a process rank's command line carries it
 *   (backends/processes/process-rank-handle.ts);
 * - in NODE_OPTIONS: no ("is not allowed in NODE_OPTIONS", exit 9);
 * - in a Worker's execArgv: no (ERR_WORKER_INVALID_EXEC_ARGV: a worker
 *   takes Node's per-thread options, not V8's). A thread rank needs none:
 *   V8 flags are per process, so it has what the kernel was started with;
 *   the thread ranks' execArgv leaves V8 flags out
 *   (backends/rank-entry-points.ts);
 * - at run time (`v8.setFlagsFromString`): V8 documents that as undefined
 *   behaviour once code has run, so distlab does not.
 *
 * Without the flag the matMul kernel multiplies then adds (gemm.ts says
 * so in `WasmGemm.fmaMissing`).
 *
 * `--single-threaded-gc`: each isolate collects on its own thread, with no
 * helper threads marking, sweeping or scavenging beside it. Ranks are SPMD
 * and keep their cores busy, so a helper only takes a core from a rank, and
 * every rank then waits for the slowest: on the 2-core build machine the
 * first 64 MiB allReduce of a `%%distributed -n 2` cell (right after the
 * cell allocated its arrays, which starts a collection in each rank) took
 * 24-31 ms with helpers and 13-17 ms without (docs/benchmarks.md). Rank
 * heaps are small (tensors live in WebAssembly or GPU memory), so their
 * collections stay short on one thread. It is a V8 flag like the one above:
 * on the command line of the kernel and of process ranks, never in a
 * Worker's execArgv.
 */
import { Wasm } from "./comm/wasm-api";
import { gemmModuleBytes } from "./compute/wasm/gemm-module";

export const RELAXED_SIMD_FLAG = "--experimental-wasm-relaxed-simd";
export const SINGLE_THREADED_GC_FLAG = "--single-threaded-gc";

/** Every V8 flag this module may ask for: what a Worker's execArgv must not carry. */
export const V8_START_FLAGS: readonly string[] = [RELAXED_SIMD_FLAG, SINGLE_THREADED_GC_FLAG];

/**
 * This thread's node flags for a Worker it starts: without the inspector's (a second inspector
 * on the same port fails) and without V8 flags, which a Worker given them refuses
 * (ERR_WORKER_INVALID_EXEC_ARGV) and does not need, since V8's flags are the process's.
 */
export function workerExecArgv(): string[] {
  return process.execArgv.filter((flag) => !flag.startsWith("--inspect") && !V8_START_FLAGS.includes(flag) && !HEAP_FLAG.test(flag));
}

/**
 * V8 heap limits a process rank is started with (`--max-old-space-size=`, its memory cap): a Worker
 * refuses them too (ERR_WORKER_INVALID_EXEC_ARGV); a worker's heap is bounded by its resourceLimits.
 */
const HEAP_FLAG = /^--max-(old|semi)-space-size(=|$)/;

/** Whether this process compiles a relaxed SIMD module (the matMul kernel's own fused form). */
export function relaxedSimdCompiles(): boolean {
  return Wasm.validate(gemmModuleBytes({ mr: 1, nr: 4, fma: true }));
}

/**
 * The V8 flags to start a Node process with so that it runs distlab's
 * kernels at full speed, for a node of the same version as this one: the
 * relaxed SIMD flag where this process was started with it or cannot
 * compile relaxed SIMD without it (Node 20; none from Node 22), and
 * single-threaded collections.
 */
export function v8StartFlags(): string[] {
  const simd = process.execArgv.includes(RELAXED_SIMD_FLAG) || !relaxedSimdCompiles() ? [RELAXED_SIMD_FLAG] : [];
  return [...simd, SINGLE_THREADED_GC_FLAG];
}
