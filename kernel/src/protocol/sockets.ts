/**
 * The kernel's five zeromq sockets, bound to the ports of the connection file.
 * shell and stdin are ROUTERs and iopub an XPUB (so that it can greet each new
 * subscriber with `iopub_welcome`), all on the main thread; control and
 * heartbeat live in a worker thread (control-thread.ts) so that they answer
 * while a cell blocks the main thread.
 */
import * as zmq from "zeromq";
import { endpoint, type Channel, type ConnectionInfo } from "./connection";
import { ControlThread } from "./control-thread";
import type { IncomingMessage, JupyterMessage } from "./messages";
import { SerialSender } from "./serial-sender";
import { decodeMessage, encodeMessage, MessageSigner, WireError } from "./wire";

type MainThreadRouter = "shell" | "stdin";

export class KernelSockets {
  private readonly routers: Record<MainThreadRouter, zmq.Router>;
  private readonly iopub = new zmq.XPublisher({ linger: 1000 });
  private readonly senders: Record<MainThreadRouter | "iopub", SerialSender>;
  private readonly control: ControlThread;
  readonly signer: MessageSigner;

  constructor(private readonly info: ConnectionInfo) {
    this.signer = new MessageSigner(info.signature_scheme, info.key);
    this.routers = { shell: new zmq.Router({ linger: 1000 }), stdin: new zmq.Router({ linger: 1000 }) };
    this.senders = {
      shell: new SerialSender(this.routers.shell, "shell"),
      stdin: new SerialSender(this.routers.stdin, "stdin"),
      iopub: new SerialSender(this.iopub, "iopub"),
    };
    this.control = new ControlThread(info, this.signer);
  }

  /**
   * Binds every channel. `onInterrupt(requestedAt)` is called the moment an interrupt_request
   * arrives; `onControl` then gets it, like every other control message.
   */
  async bind(onControl: (message: IncomingMessage) => void, onInterrupt: (requestedAt: number) => void): Promise<void> {
    const binds: Array<[Channel, zmq.Socket]> = [
      ["shell", this.routers.shell],
      ["stdin", this.routers.stdin],
      ["iopub", this.iopub],
    ];
    for (const [channel, socket] of binds) {
      const address = endpoint(this.info, channel);
      try {
        await socket.bind(address);
      } catch (error) {
        throw new Error(`cannot bind the ${channel} channel to ${address}: ${(error as Error).message}`);
      }
    }
    await this.control.start(onControl, onInterrupt);
  }

  /** Calls `handle` for each authentic message on a main-thread ROUTER, in arrival order. */
  async receive(channel: MainThreadRouter, handle: (message: IncomingMessage) => void): Promise<void> {
    try {
      for await (const frames of this.routers[channel]) {
        let message: IncomingMessage;
        try {
          message = decodeMessage(frames, this.signer);
        } catch (error) {
          if (!(error instanceof WireError)) throw error;
          // A bad message must not stop the kernel; it is dropped and logged to the kernel's stderr.
          process.stderr.write(`distlab: dropped a message on ${channel}: ${error.message}\n`);
          continue;
        }
        handle(message);
      }
    } catch (error) {
      if (!this.routers[channel].closed) throw error;
    }
  }

  /** Calls `onSubscribe(topic)` whenever a frontend subscribes to iopub. */
  async watchSubscriptions(onSubscribe: (topic: Buffer) => void): Promise<void> {
    try {
      for await (const [event] of this.iopub) {
        // XPUB subscription frames: 0x01 + topic to subscribe, 0x00 + topic to unsubscribe.
        if (event.length > 0 && event[0] === 1) onSubscribe(event.subarray(1));
      }
    } catch (error) {
      if (!this.iopub.closed) throw error;
    }
  }

  send(channel: MainThreadRouter | "control" | "iopub", message: JupyterMessage, identities: Buffer[] = []): Promise<void> {
    if (channel === "control") {
      this.control.send(message, identities);
      return Promise.resolve();
    }
    return this.senders[channel].send(encodeMessage(message, this.signer, identities));
  }

  /**
   * Closes every channel: the control thread's first, then, once that thread
   * has ended, this thread's. zeromq's sockets in two threads must not be
   * closed at once: a worker's isolate torn down while the main thread is in
   * zmq_close corrupted the heap ("corrupted double-linked list", SIGABRT at
   * exit, in about one shutdown in ten).
   */
  async close(): Promise<void> {
    await this.control.close();
    for (const socket of [...Object.values(this.routers), this.iopub]) {
      if (!socket.closed) socket.close();
    }
  }
}
