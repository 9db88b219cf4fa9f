/**
 * The main thread's side of the control channel: starts control-worker in a
 * worker thread and exchanges raw frames with it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { ConnectionInfo } from "./connection";
import type { IncomingMessage, JupyterMessage } from "./messages";
import { decodeMessage, encodeMessage, type MessageSigner, WireError } from "./wire";

/** Worker -> main. Frames arrive as Uint8Arrays (structured clone drops Buffer's prototype). */
export type ControlToMain =
  | { type: "ready" }
  | { type: "bind-error"; message: string }
  /**
   * An interrupt_request arrived at `requestedAt` (Date.now()). The main thread acknowledges it
   * through the shared `interruptAck` word; unacknowledged, the control thread raises SIGINT.
   */
  | { type: "interrupt"; requestedAt: number }
  | { type: "message"; frames: Uint8Array[] };
/** Main -> worker. */
export type ControlFromMain = { type: "send"; frames: Uint8Array[] } | { type: "close" };

/** What the control worker receives as workerData. */
export interface ControlWorkerData {
  connection: ConnectionInfo;
  /**
   * One Int32 word: the control thread stores INTERRUPT_PENDING when it posts an interrupt, the
   * main thread stores INTERRUPT_ACKNOWLEDGED and notifies when that post reaches it.
   */
  interruptAck: Int32Array;
}
export const INTERRUPT_ACKNOWLEDGED = 0;
export const INTERRUPT_PENDING = 1;

function startWorker(workerData: ControlWorkerData): Worker {
  const compiled = join(__dirname, "control-worker.js");
  if (existsSync(compiled)) return new Worker(compiled, { workerData });
  // Running from sources (under tsx): load the .ts through tsx's CommonJS hook inside the worker.
  const source = join(__dirname, "control-worker.ts");
  const bootstrap = `require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(source)});`;
  return new Worker(bootstrap, { eval: true, workerData });
}

export class ControlThread {
  private readonly worker: Worker;
  private handler: ((message: IncomingMessage) => void) | undefined;
  private readonly interruptAck = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

  constructor(
    connection: ConnectionInfo,
    private readonly signer: MessageSigner,
  ) {
    this.worker = startWorker({ connection, interruptAck: this.interruptAck });
    // The control thread must never keep the kernel alive on its own.
    this.worker.unref();
  }

  /** Resolves once control and heartbeat are bound; rejects with the bind error otherwise. */
  start(handle: (message: IncomingMessage) => void, onInterrupt: (requestedAt: number) => void): Promise<void> {
    this.handler = handle;
    return new Promise((resolve, reject) => {
      this.worker.on("error", (error) => {
        process.stderr.write(`distlab: control thread failed: ${error.stack ?? error.message}\n`);
        reject(error);
      });
      this.worker.on("message", (message: ControlToMain) => {
        if (message.type === "ready") resolve();
        else if (message.type === "bind-error") reject(new Error(message.message));
        else if (message.type === "interrupt") {
          // The event loop is free: the abort below reaches an awaiting cell, no SIGINT is needed.
          Atomics.store(this.interruptAck, 0, INTERRUPT_ACKNOWLEDGED);
          Atomics.notify(this.interruptAck, 0);
          onInterrupt(message.requestedAt);
        }
        else this.deliver(message.frames);
      });
    });
  }

  send(message: JupyterMessage, identities: Buffer[]): void {
    const frames = encodeMessage(message, this.signer, identities);
    this.worker.postMessage({ type: "send", frames } satisfies ControlFromMain);
  }

  /**
   * Closes control and heartbeat and resolves once the worker has exited (or after `timeoutMs`).
   * Exiting the process while zeromq closes its sockets in the worker aborts the process.
   */
  close(timeoutMs = 3000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.worker.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage({ type: "close" } satisfies ControlFromMain);
    });
  }

  private deliver(frames: Uint8Array[]): void {
    let message: IncomingMessage;
    try {
      message = decodeMessage(frames.map((frame) => Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)), this.signer);
    } catch (error) {
      if (error instanceof WireError) return; // already reported by the control thread
      throw error;
    }
    this.handler?.(message);
  }
}
