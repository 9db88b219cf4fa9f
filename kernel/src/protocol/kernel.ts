/**
 * The Jupyter kernel: binds the sockets, answers every shell and control
 * request of messaging protocol 5.3, and hands cells to a KernelBackend.
 *
 * Shell requests are handled one at a time in arrival order (as frontends
 * expect); control requests (interrupt, shutdown, kernel_info) are handled at
 * once, even while a cell runs.
 */
import type { KernelBackend } from "./backend";
import { CommRegistry } from "./comms";
import type { ConnectionInfo } from "./connection";
import { errorOutcomeFrom, ExecutionRunner } from "./execution";
import { HistoryStore } from "./history";
import { HeaderFactory, PROTOCOL_VERSION, type IncomingMessage, type ParentHeader } from "./messages";
import { IopubPublisher } from "./publisher";
import { KernelSockets } from "./sockets";
import { StdinChannel } from "./stdin";

/** What kernel_info_reply says about the implementation and its language. */
export interface KernelDescription {
  implementation: string;
  implementation_version: string;
  banner: string;
  language_info: Record<string, unknown>;
  help_links?: Array<{ text: string; url: string }>;
}

export interface KernelOptions {
  connection: ConnectionInfo;
  backend: KernelBackend;
  description: KernelDescription;
  /** Called once the kernel has shut down; the process should exit with `code`. */
  onExit: (code: number) => void;
  /** How long backend.shutdown may take before the kernel exits anyway, in milliseconds. */
  shutdownTimeoutMs?: number;
}

export class Kernel {
  private readonly headers = new HeaderFactory();
  private readonly sockets: KernelSockets;
  private readonly publisher: IopubPublisher;
  private readonly comms: CommRegistry;
  private readonly history = new HistoryStore();
  private readonly stdin: StdinChannel;
  private readonly runner: ExecutionRunner;
  private readonly shellQueue: IncomingMessage[] = [];
  /** msg_ids of queued execute_requests to answer with status "aborted" (a cell before them failed). */
  private readonly abortedIds = new Set<string>();
  private drainingShell = false;
  private shuttingDown = false;
  /** The shell request being handled, or the last one: the parent of output that has no better one. */
  private lastParent: ParentHeader = {};

  constructor(private readonly options: KernelOptions) {
    this.sockets = new KernelSockets(options.connection);
    this.publisher = new IopubPublisher(this.sockets, this.headers);
    this.comms = new CommRegistry(this.publisher, () => this.lastParent);
    this.stdin = new StdinChannel(this.sockets, this.headers);
    this.runner = new ExecutionRunner({
      backend: options.backend,
      publisher: this.publisher,
      history: this.history,
      stdin: this.stdin,
      comms: this.comms,
    });
  }

  async start(): Promise<void> {
    await this.sockets.bind(
      (message) => void this.handleControl(message),
      (requestedAt) => this.interrupt(requestedAt),
    );
    // interrupt_mode "signal" (Jupyter sends SIGINT) and "message" (the control thread raises it) both land here.
    process.on("SIGINT", this.onSigint);
    void this.sockets.receive("shell", (message) => this.enqueueShell(message));
    void this.sockets.receive("stdin", (message) => this.stdin.handleReply(message));
    let started = false;
    void this.sockets.watchSubscriptions((topic) => {
      void this.publisher.welcome(topic);
      // "starting" goes out once, after the first subscriber's welcome: published earlier, nobody
      // could receive it, and JEP 65 wants iopub_welcome to be a subscriber's first message.
      if (!started) void this.publisher.status("starting", {});
      started = true;
    });
  }

  private readonly onSigint = (): void => this.interrupt();

  /**
   * Interrupts the running cell: aborts its interruptSignal and tells the backend. `requestedAt`
   * (Date.now() when the user asked) spares a cell that started after the request.
   */
  interrupt(requestedAt: number = Date.now()): void {
    if (!this.runner.interrupt(requestedAt)) return;
    try {
      this.options.backend.interrupt();
    } catch (error) {
      this.reportBackgroundError(error);
    }
  }

  /** An error no cell is waiting for (a throwing timer callback): shown as stderr under the latest cell. */
  reportBackgroundError(error: unknown): void {
    const detail = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
    this.publisher.stream("stderr", `Uncaught error outside any running cell:\n${detail}\n`, this.lastParent);
  }

  async shutdown(restart: boolean): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.interrupt(Date.now());
    const timeoutMs = this.options.shutdownTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    try {
      await Promise.race([this.options.backend.shutdown(restart), deadline]);
    } catch (error) {
      process.stderr.write(`distlab: backend shutdown failed: ${String(error)}\n`);
    } finally {
      clearTimeout(timer);
    }
    this.publisher.flushStreams();
    process.off("SIGINT", this.onSigint);
    await this.sockets.close();
    this.options.onExit(0);
  }

  private enqueueShell(message: IncomingMessage): void {
    this.shellQueue.push(message);
    if (!this.drainingShell) void this.drainShell();
  }

  private async drainShell(): Promise<void> {
    this.drainingShell = true;
    try {
      for (let message = this.shellQueue.shift(); message; message = this.shellQueue.shift()) {
        await this.handleShell(message);
      }
    } finally {
      this.drainingShell = false;
    }
  }

  private reply(channel: "shell" | "control", request: IncomingMessage, content: Record<string, unknown>, metadata: Record<string, unknown> = {}): void {
    const msgType = request.header.msg_type.replace(/_request$/, "_reply");
    const message = { header: this.headers.make(msgType), parent_header: request.header, metadata, content, buffers: [] };
    void this.sockets.send(channel, message, request.identities);
  }

  private async handleShell(request: IncomingMessage): Promise<void> {
    this.lastParent = request.header;
    await this.publisher.status("busy", request.header);
    try {
      await this.dispatchShell(request);
    } catch (error) {
      const { ename, evalue, traceback } = errorOutcomeFrom(error);
      if (request.header.msg_type.endsWith("_request")) this.reply("shell", request, { status: "error", ename, evalue, traceback });
      else this.reportBackgroundError(error);
    }
    await this.publisher.status("idle", request.header);
  }

  private async dispatchShell(request: IncomingMessage): Promise<void> {
    const { backend } = this.options;
    const content = request.content;
    switch (request.header.msg_type) {
      case "execute_request":
        return this.execute(request);
      case "kernel_info_request":
        return this.reply("shell", request, this.kernelInfo());
      case "complete_request": {
        const code = String(content.code ?? "");
        const cursor = typeof content.cursor_pos === "number" ? content.cursor_pos : [...code].length;
        const completion = await backend.complete(code, cursor);
        return this.reply("shell", request, {
          status: "ok",
          matches: completion.matches,
          cursor_start: completion.cursorStart,
          cursor_end: completion.cursorEnd,
          metadata: completion.metadata ?? {},
        });
      }
      case "inspect_request": {
        const code = String(content.code ?? "");
        const cursor = typeof content.cursor_pos === "number" ? content.cursor_pos : [...code].length;
        const inspection = await backend.inspect(code, cursor, content.detail_level === 1 ? 1 : 0);
        return this.reply("shell", request, { status: "ok", found: inspection.found, data: inspection.data, metadata: inspection.metadata ?? {} });
      }
      case "is_complete_request": {
        const verdict = await backend.isComplete(String(content.code ?? ""));
        return this.reply("shell", request, verdict.status === "incomplete" ? { status: "incomplete", indent: verdict.indent ?? "" } : { status: verdict.status });
      }
      case "history_request":
        return this.reply("shell", request, { status: "ok", history: this.history.query(content) });
      case "comm_info_request": {
        const target = typeof content.target_name === "string" ? content.target_name : undefined;
        return this.reply("shell", request, { status: "ok", comms: this.comms.info(target) });
      }
      case "comm_open":
        return this.comms.handleOpen(content);
      case "comm_msg":
        return this.comms.handleMessage(content, request.metadata, request.buffers);
      case "comm_close":
        return this.comms.handleClose(content);
      case "connect_request": {
        const info = this.options.connection;
        const ports = { shell_port: info.shell_port, iopub_port: info.iopub_port, stdin_port: info.stdin_port, hb_port: info.hb_port, control_port: info.control_port };
        return this.reply("shell", request, { status: "ok", ...ports });
      }
      case "shutdown_request":
        // Older clients send shutdown on shell; it means the same as on control.
        return this.shutdownRequest("shell", request);
      default:
        process.stderr.write(`distlab: unknown shell message type ${JSON.stringify(request.header.msg_type)} ignored\n`);
    }
  }

  private async execute(request: IncomingMessage): Promise<void> {
    if (this.abortedIds.delete(request.header.msg_id)) {
      return this.reply("shell", request, { status: "aborted", execution_count: this.runner.executionCount });
    }
    const { reply, failed } = await this.runner.run(request);
    if (failed && request.content.stop_on_error !== false) {
      // Cells queued behind a failed one depended on it; they are answered "aborted", as ipykernel does.
      for (const queued of this.shellQueue) {
        if (queued.header.msg_type === "execute_request") this.abortedIds.add(queued.header.msg_id);
      }
    }
    this.publisher.flushStreams();
    this.reply("shell", request, reply, { status: reply.status });
  }

  private async handleControl(request: IncomingMessage): Promise<void> {
    await this.publisher.status("busy", request.header);
    switch (request.header.msg_type) {
      case "interrupt_request":
        // Already acted on: the control thread raised SIGINT and called onInterrupt as it arrived.
        this.reply("control", request, { status: "ok" });
        break;
      case "kernel_info_request":
        this.reply("control", request, this.kernelInfo());
        break;
      case "shutdown_request":
        await this.publisher.status("idle", request.header);
        return this.shutdownRequest("control", request);
      case "debug_request":
        this.reply("control", request, { status: "error", ename: "DebuggerNotSupported", evalue: "the distlab kernel has no debugger (kernel_info says debugger: false)", traceback: [] });
        break;
      default:
        process.stderr.write(`distlab: unknown control message type ${JSON.stringify(request.header.msg_type)} ignored\n`);
    }
    await this.publisher.status("idle", request.header);
  }

  private async shutdownRequest(channel: "shell" | "control", request: IncomingMessage): Promise<void> {
    const restart = request.content.restart === true;
    this.reply(channel, request, { status: "ok", restart });
    await this.publisher.publish("shutdown_reply", { status: "ok", restart }, request.header);
    await this.shutdown(restart);
  }

  private kernelInfo(): Record<string, unknown> {
    const { description } = this.options;
    return {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: description.implementation,
      implementation_version: description.implementation_version,
      language_info: description.language_info,
      banner: description.banner,
      help_links: description.help_links ?? [],
      debugger: false,
    };
  }
}
