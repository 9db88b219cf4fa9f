/**
 * Runs on a rank: sends everything the rank prints (console.*,
 * process.stdout/stderr.write) to the kernel over the rank's port, tagged
 * with the cell that was running, so the kernel can prefix it `[rank r]`.
 */
import { Console } from "node:console";
import { Writable } from "node:stream";
import type { MessagePort } from "node:worker_threads";
import type { RankEvent } from "./protocol";

export function captureOutput(port: MessagePort, currentCell: () => number): void {
  const send = (name: "stdout" | "stderr", chunk: unknown): void => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8");
    if (text === "") return;
    const event: RankEvent = { kind: "stream", cellId: currentCell(), name, text };
    port.postMessage(event);
  };
  const sink = (name: "stdout" | "stderr"): Writable =>
    new Writable({
      decodeStrings: false,
      write(chunk, _encoding, done) {
        send(name, chunk);
        done();
      },
    });
  const stdout = sink("stdout");
  const stderr = sink("stderr");
  // A Console bound to these sinks formats exactly as Node's console does.
  const rankConsole = new Console({ stdout, stderr, colorMode: false });
  for (const method of ["log", "info", "debug", "warn", "error", "dir", "table", "trace", "group", "groupEnd", "time", "timeEnd", "timeLog", "count", "assert"] as const) {
    (console as unknown as Record<string, unknown>)[method] = (rankConsole[method] as (...args: unknown[]) => void).bind(rankConsole);
  }
  // Writes to process.stdout go straight out: no stream buffering, so order with console.* is kept.
  const patchWrite = (stream: NodeJS.WriteStream, name: "stdout" | "stderr"): void => {
    stream.write = ((chunk: unknown, encodingOrDone?: unknown, done?: unknown): boolean => {
      send(name, chunk);
      const callback = typeof encodingOrDone === "function" ? encodingOrDone : done;
      if (typeof callback === "function") queueMicrotask(() => (callback as () => void)());
      return true;
    }) as typeof stream.write;
  };
  patchWrite(process.stdout, "stdout");
  patchWrite(process.stderr, "stderr");
}
