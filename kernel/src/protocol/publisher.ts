/**
 * Everything the kernel broadcasts on IOPub: status, execute_input, outputs,
 * comm traffic. Stream text is coalesced briefly (many small writes from
 * several ranks become one message) but is always flushed before any other
 * IOPub message, so order on the wire matches the order of the calls.
 */
import type { KernelSockets } from "./sockets";
import type { HeaderFactory, JupyterMessage, MessageHeader, ParentHeader } from "./messages";

/** How long stream text may wait for more text before it is sent, in milliseconds. */
const STREAM_COALESCE_MS = 5;
/** Stream text is sent at once past this many UTF-16 code units. */
const STREAM_FLUSH_CHARS = 64 * 1024;

interface PendingStream {
  parent: ParentHeader;
  name: "stdout" | "stderr";
  text: string;
}

export class IopubPublisher {
  private pending: PendingStream[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sockets: KernelSockets,
    private readonly headers: HeaderFactory,
  ) {}

  publish(
    msgType: string,
    content: Record<string, unknown>,
    parent: ParentHeader,
    metadata: Record<string, unknown> = {},
    buffers: Buffer[] = [],
  ): Promise<void> {
    this.flushStreams();
    return this.send(msgType, content, parent, metadata, buffers);
  }

  status(state: "starting" | "busy" | "idle", parent: ParentHeader): Promise<void> {
    return this.publish("status", { execution_state: state }, parent);
  }

  stream(name: "stdout" | "stderr", text: string, parent: ParentHeader): void {
    if (text === "") return;
    const last = this.pending[this.pending.length - 1];
    if (last && last.name === name && last.parent === parent) last.text += text;
    else this.pending.push({ parent, name, text });
    const total = this.pending.reduce((sum, item) => sum + item.text.length, 0);
    if (total >= STREAM_FLUSH_CHARS) this.flushStreams();
    else this.timer ??= setTimeout(() => this.flushStreams(), STREAM_COALESCE_MS);
  }

  flushStreams(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.pending;
    this.pending = [];
    for (const { parent, name, text } of pending) void this.send("stream", { name, text }, parent);
  }

  /** JEP 65: greets a new subscriber so that clients know their subscription is live. */
  welcome(topic: Buffer): Promise<void> {
    const message = this.message("iopub_welcome", { subscription: topic.toString("utf8") }, {});
    return this.sockets.send("iopub", message, [topic]);
  }

  private send(
    msgType: string,
    content: Record<string, unknown>,
    parent: ParentHeader,
    metadata: Record<string, unknown> = {},
    buffers: Buffer[] = [],
  ): Promise<void> {
    const message = this.message(msgType, content, parent, metadata, buffers);
    const topic = Buffer.from(`kernel.${this.headers.session}.${msgType}`);
    return this.sockets.send("iopub", message, [topic]);
  }

  private message(
    msgType: string,
    content: Record<string, unknown>,
    parent: ParentHeader,
    metadata: Record<string, unknown> = {},
    buffers: Buffer[] = [],
  ): JupyterMessage {
    const header: MessageHeader = this.headers.make(msgType);
    return { header, parent_header: parent, metadata, content, buffers };
  }
}
