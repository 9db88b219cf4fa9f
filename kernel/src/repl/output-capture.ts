/**
 * Routes what cell code prints to the execution that is running.
 *
 * `process.stdout.write` and `process.stderr.write` are replaced once per
 * thread; `console.log` and friends write through them. While an output is
 * active, text goes to its `stream()`; output printed later by timers or
 * unawaited promises goes to the execution that most recently started (the
 * one the user is looking at), as in IPython. Before any execution, text
 * goes to the real stdout/stderr.
 *
 * Kernel code that must log to the terminal whatever runs should use
 * `writeKernelLog`, which bypasses the capture.
 */
import type { ExecutionIO } from "../protocol/backend";

/** The part of an ExecutionIO that cell code can reach. */
export type CellOutput = Pick<ExecutionIO, "stream" | "display" | "clearOutput" | "input">;

type Write = typeof process.stdout.write;

let active: CellOutput | undefined;
let originalStderrWrite: Write | undefined;

/** Makes `output` receive cell prints and displays from now on (until the next call). */
export function setActiveOutput(output: CellOutput | undefined): void {
  installCapture();
  active = output;
}

export function activeOutput(): CellOutput | undefined {
  return active;
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
      const target = active;
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
