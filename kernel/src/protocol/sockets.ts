/**
 * The kernel's five zeromq sockets, bound to the ports of the connection file:
 * shell, control and stdin are ROUTERs, iopub is an XPUB (so that it can greet
 * each new subscriber with `iopub_welcome`), heartbeat echoes on a REP.
 */
import * as zmq from "zeromq";
import { endpoint, type Channel, type ConnectionInfo } from "./connection";
import { decodeMessage, encodeMessage, MessageSigner, WireError } from "./wire";
import type { IncomingMessage, JupyterMessage } from "./messages";

type RouterChannel = "shell" | "control" | "stdin";

/**
 * zeromq.js allows one pending send per socket; this queues the rest so that
 * callers can fire and forget while message order is kept.
 */
class SerialSender {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: zmq.Router | zmq.XPublisher,
    private readonly label: string,
  ) {}

  send(frames: Buffer[]): Promise<void> {
    const sent = this.tail.then(() => this.socket.send(frames));
    this.tail = sent.catch((error: unknown) => {
      if (!this.socket.closed) process.stderr.write(`distlab: sending on ${this.label} failed: ${String(error)}\n`);
    });
    return this.tail;
  }
}

export class KernelSockets {
  private readonly routers: Record<RouterChannel, zmq.Router>;
  private readonly iopub = new zmq.XPublisher({ linger: 1000 });
  private readonly heartbeat = new zmq.Reply({ linger: 0 });
  private readonly senders: Record<RouterChannel | "iopub", SerialSender>;
  readonly signer: MessageSigner;

  constructor(private readonly info: ConnectionInfo) {
    this.signer = new MessageSigner(info.signature_scheme, info.key);
    this.routers = {
      shell: new zmq.Router({ linger: 1000 }),
      control: new zmq.Router({ linger: 1000 }),
      stdin: new zmq.Router({ linger: 1000 }),
    };
    this.senders = {
      shell: new SerialSender(this.routers.shell, "shell"),
      control: new SerialSender(this.routers.control, "control"),
      stdin: new SerialSender(this.routers.stdin, "stdin"),
      iopub: new SerialSender(this.iopub, "iopub"),
    };
  }

  async bind(): Promise<void> {
    const binds: Array<[Channel, zmq.Socket]> = [
      ["shell", this.routers.shell],
      ["control", this.routers.control],
      ["stdin", this.routers.stdin],
      ["iopub", this.iopub],
      ["hb", this.heartbeat],
    ];
    for (const [channel, socket] of binds) {
      const address = endpoint(this.info, channel);
      try {
        await socket.bind(address);
      } catch (error) {
        throw new Error(`cannot bind the ${channel} channel to ${address}: ${(error as Error).message}`);
      }
    }
    void this.echoHeartbeats();
  }

  /** Calls `handle` for each authentic message on a ROUTER channel, one after another as they arrive. */
  async receive(channel: RouterChannel, handle: (message: IncomingMessage) => void): Promise<void> {
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

  send(channel: RouterChannel | "iopub", message: JupyterMessage, identities: Buffer[] = []): Promise<void> {
    return this.senders[channel].send(encodeMessage(message, this.signer, identities));
  }

  private async echoHeartbeats(): Promise<void> {
    try {
      for await (const frames of this.heartbeat) await this.heartbeat.send(frames);
    } catch (error) {
      if (!this.heartbeat.closed) process.stderr.write(`distlab: heartbeat stopped: ${String(error)}\n`);
    }
  }

  close(): void {
    for (const socket of [...Object.values(this.routers), this.iopub, this.heartbeat]) {
      if (!socket.closed) socket.close();
    }
  }
}
