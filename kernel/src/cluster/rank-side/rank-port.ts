/**
 * The rank's line to the kernel for traffic that flows while a task runs:
 * events up (output, status answers, spans, end-of-cell markers), commands
 * down (cancel, status queries). A thread rank's MessagePort is one as it
 * is; a process rank wraps its IPC channel with `ipcRankPort`.
 */
import type { FromRankProcess, KernelCommand, RankEvent, ToRankProcess } from "../rank-messages";

export interface RankPort {
  postMessage(event: RankEvent): void;
  on(name: "message", listener: (command: KernelCommand) => void): unknown;
}

/** This process's IPC channel to the kernel as a RankPort (envelopes of ../rank-messages.ts). */
export function ipcRankPort(): RankPort {
  if (!process.send) throw new Error("a process rank must be started with an IPC channel (stdio 'ipc')");
  return {
    postMessage: (event) => sendToKernel({ type: "event", event }),
    on: (_name, listener) =>
      process.on("message", (message: ToRankProcess) => {
        if (message.type === "command") listener(message.command);
      }),
  };
}

/** Sends one envelope; after the kernel has gone (channel closed) there is nobody to tell. */
export function sendToKernel(message: FromRankProcess): void {
  if (process.connected) process.send!(message);
}
