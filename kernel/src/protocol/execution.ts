/**
 * Runs one execute_request end to end: execution count, execute_input, the
 * backend call with an ExecutionIO bound to this request, execute_result or
 * error on IOPub, history, user_expressions, and the execute_reply content.
 */
import type { DisplayPayload, ExecuteOutcome, ExecutionIO, KernelBackend } from "./backend";
import type { CommRegistry } from "./comms";
import type { HistoryStore } from "./history";
import type { IncomingMessage } from "./messages";
import type { IopubPublisher } from "./publisher";
import type { StdinChannel } from "./stdin";

export interface ExecutionDeps {
  backend: KernelBackend;
  publisher: IopubPublisher;
  history: HistoryStore;
  stdin: StdinChannel;
  comms: CommRegistry;
}

/** Two interrupts of one cell closer than this (milliseconds) are one request that came by two paths. */
const DUPLICATE_INTERRUPT_MS = 300;

interface RunningExecution {
  controller: AbortController;
  /** Date.now() when the cell started. */
  startedAt: number;
  lastInterruptAt?: number;
}

export interface ExecuteResult {
  reply: Record<string, unknown>;
  failed: boolean;
}

/** `?name`, `name?` (detail 0) and `??name`, `name??` (detail 1) page the backend's inspection, as in IPython. */
const HELP_SYNTAX = /^\s*(?:(\?\??)\s*([A-Za-z_$][\w$.]*)|([A-Za-z_$][\w$.]*)\s*(\?\??))\s*$/;

export function errorOutcomeFrom(error: unknown): ExecuteOutcome & { status: "error" } {
  const asError = error instanceof Error ? error : new Error(String(error));
  return {
    status: "error",
    ename: asError.name || "Error",
    evalue: asError.message,
    traceback: (asError.stack ?? `${asError.name}: ${asError.message}`).split("\n"),
  };
}

export class ExecutionRunner {
  executionCount = 0;
  private running: RunningExecution | undefined;

  constructor(private readonly deps: ExecutionDeps) {}

  get isRunning(): boolean {
    return this.running !== undefined;
  }

  /**
   * Aborts the running cell's interruptSignal if it started by `requestedAt` (Date.now() milliseconds).
   * Returns whether the backend should be told: false when nothing runs, or when this same
   * interrupt already arrived by its other path (signal and control thread) moments ago.
   */
  interrupt(requestedAt: number): boolean {
    const running = this.running;
    if (!running || running.startedAt > requestedAt) return false;
    const now = Date.now();
    if (running.lastInterruptAt !== undefined && now - running.lastInterruptAt < DUPLICATE_INTERRUPT_MS) return false;
    running.lastInterruptAt = now;
    running.controller.abort(new Error("interrupted by the user"));
    return true;
  }

  async run(request: IncomingMessage): Promise<ExecuteResult> {
    const { publisher, history } = this.deps;
    const content = request.content;
    const code = typeof content.code === "string" ? content.code : "";
    const silent = content.silent === true;
    const storeHistory = silent ? false : content.store_history !== false;
    if (storeHistory) {
      this.executionCount += 1;
      history.record(this.executionCount, code);
    }
    const count = this.executionCount;
    // Awaited: once libzmq holds the message it goes out even if the cell then blocks the main thread.
    if (!silent) await publisher.publish("execute_input", { code, execution_count: count }, request.header);

    const controller = new AbortController();
    this.running = { controller, startedAt: Date.now() };
    let outcome: ExecuteOutcome;
    let payload: Array<Record<string, unknown>> = [];
    const io = this.makeIO(request, count, controller.signal, false);
    try {
      const help = HELP_SYNTAX.exec(code);
      if (help) {
        const name = help[2] ?? help[3];
        const marks = help[1] ?? help[4];
        const page = await this.helpPage(name, marks.length === 2 ? 1 : 0, io);
        payload = page ? [page] : [];
        outcome = { status: "ok" };
      } else {
        outcome = await this.deps.backend.execute(code, io);
      }
    } catch (error) {
      outcome = errorOutcomeFrom(error);
    } finally {
      this.running = undefined;
    }

    if (outcome.status === "error") {
      const { ename, evalue, traceback } = outcome;
      void publisher.publish("error", { ename, evalue, traceback }, request.header);
      return { reply: { status: "error", execution_count: count, ename, evalue, traceback }, failed: true };
    }
    if (outcome.result && !silent) {
      void publisher.publish(
        "execute_result",
        { execution_count: count, data: outcome.result.data, metadata: outcome.result.metadata ?? {} },
        request.header,
      );
      const text = outcome.result.data["text/plain"];
      if (storeHistory && typeof text === "string") history.recordOutput(count, text);
    }
    const userExpressions = await this.evaluateUserExpressions(request);
    return { reply: { status: "ok", execution_count: count, payload, user_expressions: userExpressions }, failed: false };
  }

  private async helpPage(name: string, detailLevel: 0 | 1, io: ExecutionIO): Promise<Record<string, unknown> | undefined> {
    const inspection = await this.deps.backend.inspect(name, name.length, detailLevel);
    if (!inspection.found) {
      io.stream("stdout", `Object \`${name}\` not found.\n`);
      return undefined;
    }
    return { source: "page", data: inspection.data, start: 0 };
  }

  /** Each user expression runs as a silent cell; its value (or error) goes into the reply. */
  private async evaluateUserExpressions(request: IncomingMessage): Promise<Record<string, unknown>> {
    const expressions = request.content.user_expressions;
    const results: Record<string, unknown> = {};
    if (typeof expressions !== "object" || expressions === null) return results;
    for (const [name, expression] of Object.entries(expressions as Record<string, unknown>)) {
      const io = this.makeIO(request, this.executionCount, new AbortController().signal, true);
      let outcome: ExecuteOutcome;
      try {
        outcome = await this.deps.backend.execute(String(expression), io);
      } catch (error) {
        outcome = errorOutcomeFrom(error);
      }
      results[name] =
        outcome.status === "ok"
          ? { status: "ok", data: outcome.result?.data ?? {}, metadata: outcome.result?.metadata ?? {} }
          : { status: "error", ename: outcome.ename, evalue: outcome.evalue, traceback: outcome.traceback };
    }
    return results;
  }

  /** `quiet` drops output (user_expressions); a silent cell still shows its streams and displays, as in ipykernel. */
  private makeIO(request: IncomingMessage, executionCount: number, interruptSignal: AbortSignal, quiet: boolean): ExecutionIO {
    const { publisher, stdin, comms } = this.deps;
    const parent = request.header;
    const displayContent = (payload: DisplayPayload): Record<string, unknown> => ({
      data: payload.data,
      metadata: payload.metadata ?? {},
      transient: payload.transient ?? {},
    });
    return {
      executionCount,
      interruptSignal,
      comms,
      stream: (name, text) => {
        if (!quiet) publisher.stream(name, text, parent);
      },
      display: (payload, update = false) => {
        if (update && !payload.transient?.display_id) {
          throw new TypeError("update_display_data needs payload.transient.display_id naming the display to update");
        }
        if (!quiet) void publisher.publish(update ? "update_display_data" : "display_data", displayContent(payload), parent);
      },
      clearOutput: (wait = false) => {
        if (!quiet) void publisher.publish("clear_output", { wait }, parent);
      },
      input: (prompt, password = false) => stdin.request(request, prompt, password, interruptSignal),
    };
  }
}
