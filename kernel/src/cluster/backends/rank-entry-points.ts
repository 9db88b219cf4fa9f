/**
 * Where a rank's code starts and with which Node flags, for thread ranks
 * (piscina's worker file) and process ranks (the child's main module) alike.
 * Works from kernel/dist (.js) and from source under tsx (.ts).
 */
import { extname, join } from "node:path";
import { V8_START_FLAGS, v8StartFlags } from "../../v8-start-flags";

/** Heap cap per rank (MiB): a runaway rank fails with an error instead of taking the kernel down. */
export const RANK_HEAP_LIMIT_MB = 2048;

// Same extension as this file: .js from kernel/dist, .ts when run from source under tsx.
const FROM_SOURCE = extname(__filename) === ".ts";

/** The path of a rank entry module of ../rank-side/, e.g. rankEntryFile("thread-entry"). */
export function rankEntryFile(name: "thread-entry" | "process-entry"): string {
  return join(__dirname, "..", "rank-side", `${name}${extname(__filename)}`);
}

/**
 * Node flags common to rank threads and processes: the kernel's own, minus
 * inspector ports that would clash. From source, `--import tsx` does not
 * reach worker threads on Node 20, so ranks load TypeScript through tsx's
 * require hook (piscina require()s the handler first; a process rank's
 * entry is its CommonJS main module).
 */
function rankExecArgv(): string[] {
  const flags = process.execArgv.filter((flag) => !flag.startsWith("--inspect"));
  return FROM_SOURCE ? [...flags, "--require", "tsx/cjs"] : flags;
}

/**
 * A thread rank's execArgv: without V8 flags, which a Worker refuses
 * (ERR_WORKER_INVALID_EXEC_ARGV) and does not need: V8's flags are the
 * process's, so the thread has those the kernel started with.
 */
export function threadExecArgv(): string[] {
  return rankExecArgv().filter((flag) => !V8_START_FLAGS.includes(flag));
}

/** A process rank's node flags: the kernel's, plus the V8 flags a rank needs from its start whatever the kernel had. */
export function processExecArgv(): string[] {
  const flags = rankExecArgv();
  return [...flags, ...v8StartFlags().filter((flag) => !flags.includes(flag))];
}
