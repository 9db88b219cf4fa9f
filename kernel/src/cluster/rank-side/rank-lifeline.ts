/**
 * A process rank's lifeline to the kernel: a pipe (the child's fd 4) whose
 * other end only the kernel holds, watched by a worker thread of the rank.
 *
 * - When the kernel dies, even by SIGKILL, the OS closes its end; the
 *   watcher sees end-of-file and SIGKILLs its own process. It runs on its
 *   own thread and event loop, so a rank spinning in `while (true) {}` on its
 *   main thread still dies. (The IPC channel's `disconnect` event cannot do
 *   this: it is read on the main thread, which a busy loop never yields.)
 * - Under an agent (`--backend hosts`) the other end is the agent's, which
 *   writes a heartbeat byte every RANK_HEARTBEAT_MS and tells the rank how
 *   long a silence ends it (LIFELINE_SILENCE_ENV). A stopped agent (SIGSTOP)
 *   keeps its end open, so end-of-file never comes: the watcher SIGKILLs its
 *   process once the line has been silent that long, and a stopped host
 *   leaves no ranks running on after the kernel gave it up.
 * - The same thread samples the process's resident memory every
 *   `MEMORY_SAMPLE_MS`: over the rank's `--memory` cap, it writes one line
 *   to the kernel saying so, then SIGKILLs the process. Resident memory
 *   counts what the heap cap does not: ArrayBuffers, typed arrays, wasm
 *   memories, native allocations.
 *
 * Why not prctl(PR_SET_PDEATHSIG): Node has no binding for it, so it needs a
 * native helper built at install time (g++ and node-gyp on every machine),
 * it is Linux only, and it is cleared by an exec of a set-id program (the
 * `--backend gpus` wrapper execs through `unshare`). A pipe and a thread are
 * plain Node on any Unix.
 */
import { Worker } from "node:worker_threads";

/** The fd of the lifeline in a rank process: after stdin, stdout, stderr and the IPC channel. */
export const LIFELINE_FD = 4;

/** Environment variable carrying the rank's memory cap (bytes of resident memory) to its process. */
export const MEMORY_CAP_ENV = "DISTLAB_RANK_MEMORY_BYTES";

/** How often the watcher samples the process's resident memory (milliseconds). */
export const MEMORY_SAMPLE_MS = 100;

/**
 * Environment variable set by an agent on its ranks: milliseconds of silence on the lifeline
 * after which the rank ends itself (absent or 0: never; the kernel's own ranks get no heartbeat).
 */
export const LIFELINE_SILENCE_ENV = "DISTLAB_LIFELINE_SILENCE_MS";

/** How often an agent writes a heartbeat byte on each rank's lifeline (milliseconds). */
export const RANK_HEARTBEAT_MS = 1000;

/**
 * The silence an agent's ranks end after (milliseconds) unless the agent's own environment sets
 * LIFELINE_SILENCE_ENV: the longest the kernel waits for a silent agent (agent-link.ts), so ranks
 * of a host the kernel gave up end about when it did.
 */
export const RANK_LIFELINE_SILENCE_MS = 10_000;

/** The line the watcher writes before it kills its rank (JSON, newline-terminated). */
export type LifelineReport =
  | { memoryExceeded: { residentBytes: number; capBytes: number } }
  | { agentSilent: { silentMs: number } };

/** Plain CommonJS for an `eval` worker: it must not depend on how the rank was loaded (dist or tsx). */
const WATCHER_SOURCE = `
const net = require("node:net");
const { workerData } = require("node:worker_threads");
const die = () => process.kill(process.pid, "SIGKILL");
const line = new net.Socket({ fd: workerData.fd, readable: true, writable: true });
line.on("end", die);
line.on("close", die);
line.on("error", die);
line.resume();
if (workerData.silenceMs > 0) {
  let heard = Date.now();
  line.on("data", () => (heard = Date.now()));
  setInterval(() => {
    const silentMs = Date.now() - heard;
    if (silentMs < workerData.silenceMs) return;
    line.write(JSON.stringify({ agentSilent: { silentMs } }) + "\\n", die);
    setTimeout(die, 200);
  }, Math.min(1000, workerData.silenceMs / 4));
}
if (workerData.capBytes > 0) {
  setInterval(() => {
    const residentBytes = process.memoryUsage.rss();
    if (residentBytes <= workerData.capBytes) return;
    const report = JSON.stringify({ memoryExceeded: { residentBytes, capBytes: workerData.capBytes } });
    line.write(report + "\\n", die);
    setTimeout(die, 200);
  }, workerData.sampleMs);
}
`;

/** Starts the watcher thread; it does not keep the rank's process alive by itself. */
export function watchLifeline(): void {
  const capBytes = Number(process.env[MEMORY_CAP_ENV] ?? 0);
  const silenceMs = Number(process.env[LIFELINE_SILENCE_ENV] ?? 0);
  const watcher = new Worker(WATCHER_SOURCE, {
    eval: true,
    workerData: { fd: LIFELINE_FD, capBytes: Number.isFinite(capBytes) ? capBytes : 0, sampleMs: MEMORY_SAMPLE_MS, silenceMs: Number.isFinite(silenceMs) ? silenceMs : 0 },
    // The watcher needs none of the rank's flags (tsx, heap cap).
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: 16 },
  });
  watcher.unref();
}
