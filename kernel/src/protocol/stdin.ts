/**
 * input_request / input_reply on the stdin channel: how `prompt()` in a cell
 * asks the user for a line of text. One request is outstanding at a time,
 * addressed to the frontend that sent the running execute_request.
 */
import type { HeaderFactory, IncomingMessage } from "./messages";
import type { KernelSockets } from "./sockets";

/** The frontend said allow_stdin: false (nbclient, `jupyter run`): nobody can answer. */
export class StdinNotAllowedError extends Error {
  override name = "StdinNotImplementedError";
}

interface PendingInput {
  resolve: (value: string) => void;
  reject: (error: Error) => void;
}

export class StdinChannel {
  private pending: PendingInput | undefined;

  constructor(
    private readonly sockets: KernelSockets,
    private readonly headers: HeaderFactory,
  ) {}

  /** Asks the frontend behind `request` for input; rejects when `signal` aborts (an interrupt). */
  request(request: IncomingMessage, prompt: string, password: boolean, signal: AbortSignal): Promise<string> {
    if (request.content.allow_stdin !== true) {
      return Promise.reject(new StdinNotAllowedError("this frontend does not support input requests (allow_stdin is false)"));
    }
    if (this.pending) {
      return Promise.reject(new Error("another input request is still waiting for the user's answer"));
    }
    if (signal.aborted) return Promise.reject(new Error("input request cancelled: the cell was interrupted"));
    return new Promise<string>((resolve, reject) => {
      const onAbort = (): void => {
        this.pending = undefined;
        reject(new Error("input request cancelled: the cell was interrupted"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.pending = {
        resolve: (value) => {
          signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        reject,
      };
      const message = {
        header: this.headers.make("input_request"),
        parent_header: request.header,
        metadata: {},
        content: { prompt, password },
        buffers: [],
      };
      void this.sockets.send("stdin", message, request.identities);
    });
  }

  /** Called for every message that arrives on stdin. */
  handleReply(message: IncomingMessage): void {
    if (message.header.msg_type !== "input_reply") {
      process.stderr.write(`distlab: unexpected ${message.header.msg_type} on stdin dropped\n`);
      return;
    }
    const pending = this.pending;
    this.pending = undefined;
    if (!pending) return;
    const value = message.content.value;
    pending.resolve(typeof value === "string" ? value : String(value ?? ""));
  }
}
