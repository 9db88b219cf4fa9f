import type * as zmq from "zeromq";

/**
 * zeromq.js allows one pending send per socket; this queues the rest so that
 * callers can fire and forget while message order is kept.
 */
export class SerialSender {
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

  /** Resolves once every queued message has been handed to the socket. */
  drained(): Promise<void> {
    return this.tail;
  }
}
