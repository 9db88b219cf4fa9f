/**
 * Routes what cell code prints and displays to the right execution.
 *
 * `process.stdout.write` and `process.stderr.write` are replaced once per
 * thread (`console.log` and friends write through them). A write goes to:
 * 1. the execution whose code wrote it: `runWithOutput` runs a cell in an
 *    AsyncLocalStorage context, which timers, promises and awaits the cell
 *    starts inherit, so a `setInterval` started by cell 3 keeps printing
 *    under cell 3 (as ipykernel does for threads a cell starts);
 * 2. else the thread-wide output set by `setActiveOutput` (a rank thread,
 *    where everything printed belongs to the rank);
 * 3. else the real stdout/stderr: the kernel's own logs never land in a cell.
 *
 * Display calls (and prompt, clearOutput) follow 1 and 2, then fall back to
 * the execution that ran most recently, so a display from a callback that
 * lost its context (e.g. a comm message handler) still shows somewhere.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { ExecutionIO } from "../protocol/backend";

/** The part of an ExecutionIO that cell code can reach. */
export type CellOutput = Pick<ExecutionIO, "stream" | "display" | "clearOutput" | "input">;

type Write = typeof process.stdout.write;

const cellContext = new AsyncLocalStorage<CellOutput>();
let threadOutput: CellOutput | undefined;
let mostRecent: CellOutput | undefined;
let originalStderrWrite: Write | undefined;

/** Runs `body` (a cell) so that everything it prints or displays, now or later, reaches `output`. */
export function runWithOutput<T>(output: CellOutput, body: () => T): T {
  installCapture();
  mostRecent = output;
  return cellContext.run(output, body);
}

/** Sends every print of this thread that no cell context claims to `output` (undefined: the terminal). */
export function setActiveOutput(output: CellOutput | undefined): void {
  installCapture();
  threadOutput = output;
}

/** Where a display call made now should go. */
export function activeOutput(): CellOutput | undefined {
  return cellContext.getStore() ?? threadOutput ?? mostRecent;
}

/** Writes to the process's real stderr, never to a cell. */
export function writeKernelLog(text: string): void {
  (originalStderrWrite ?? process.stderr.write).call(process.stderr, text);
}

let installed = false;

function installCapture(): void {
  if (installed) return;
  installed = true;
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    const original = stream.write.bind(stream) as Write;
    if (name === "stderr") originalStderrWrite = original;
    stream.write = function captureWrite(chunk: unknown, encodingOrCallback?: unknown, callback?: unknown): boolean {
      const target = cellContext.getStore() ?? threadOutput;
      if (!target) return (original as (...args: unknown[]) => boolean)(chunk, encodingOrCallback, callback);
      const encoding = typeof encodingOrCallback === "string" ? (encodingOrCallback as BufferEncoding) : "utf8";
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(encoding);
      target.stream(name, text);
      const done = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
      if (typeof done === "function") queueMicrotask(() => (done as (error?: Error | null) => void)(null));
      return true;
    } as Write;
  }
}
