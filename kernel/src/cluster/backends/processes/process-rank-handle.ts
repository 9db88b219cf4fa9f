/**
 * The kernel's handle on one process rank: a child Node process on this
 * machine running rank-side/process-entry.ts, with an IPC channel ("advanced"
 * serialization) that carries tasks, results, events and commands.
 *
 * The process is started by a `RankLaunch`: node itself for `--backend
 * processes`, or a wrapper that hides the other GPUs and then execs node for
 * `--backend gpus` (gpu-isolation.ts). When the process ends (killed on
 * interrupt, `process.exit()`, a crash, SIGKILL from outside) every task it
 * had fails at once, `needsInit` tells the group to start a new one, and the
 * rank's declarations are gone. The process also holds a lifeline pipe to
 * the kernel (rank-lifeline.ts): it dies with the kernel, and says so when
 * it kills itself for going over its `--memory` cap.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { EventEmitter } from "node:events";
import type { Readable } from "node:stream";
import { toRemoteErrorData, type RemoteErrorData } from "../../../errors";
import { formatSize } from "../../../magics/memory-size";
import type { FromRankProcess, InitResult, InitTask, KernelCommand, RankEvent, RankTask, RankTaskResult, ToRankProcess } from "../../rank-messages";
import { RANK_HEAP_LIMIT_MB, rankEntryFile, processExecArgv } from "../rank-entry-points";
import { RankTaskFailed, type RankInfo } from "../../kernel-side/rank-handle";
import { RankHandleBase } from "../../kernel-side/rank-handle-base";
import { LIFELINE_FD, MEMORY_CAP_ENV, type LifelineReport } from "../../rank-side/rank-lifeline";

/** How a rank's process is started: `command` must end up exec'ing node on the rank entry with `args`' flags. */
export interface RankLaunch {
  command: string;
  args: string[];
}

/** The node command line of a process rank: the kernel's flags, a heap cap, the rank entry. */
export function nodeRankCommand(): string[] {
  return [process.execPath, ...processExecArgv(), `--max-old-space-size=${RANK_HEAP_LIMIT_MB}`, rankEntryFile("process-entry")];
}

export function nodeRankLaunch(): RankLaunch {
  const [command, ...args] = nodeRankCommand();
  return { command: command!, args };
}

/**
 * What ProcessRank uses of a rank's process: a ChildProcess, or a stand-in
 * for a process another machine's agent runs (hosts/remote-rank.ts). Events:
 * "message" (FromRankProcess), "exit" (code, signal), "error" (it never started).
 */
export interface RankChild extends EventEmitter {
  readonly pid?: number | undefined;
  readonly connected: boolean;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** stdio[LIFELINE_FD]: the rank's lifeline reports. */
  readonly stdio: ReadonlyArray<unknown>;
  send(message: ToRankProcess): boolean;
  kill(signal?: NodeJS.Signals): boolean;
  disconnect(): void;
}

/** Starts a rank's process some other way than a local spawn; `env` is what a local one would get on top of the kernel's. */
export type RankStarter = (env: Record<string, string>) => RankChild;

/** How much of a process's last stderr is kept to explain why it ended (characters). */
const STDERR_TAIL_CHARS = 2000;
/** How long a closing rank gets to exit by itself once its channel is closed (milliseconds). */
const CLOSE_GRACE_MS = 500;

/** The rank's process ended under a task. */
export class RankProcessExit extends Error {
  override readonly name = "RankProcessExit";
  constructor(
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    stderrTail: string,
  ) {
    // Neither code nor signal: a remote rank whose agent was lost (its stderr tail says how).
    const how = signal !== null ? `ended (signal ${signal})` : code !== null ? `ended (exit code ${code})` : "was lost";
    super(`its process ${how}${stderrTail.trim() ? `; its last stderr: ${stderrTail.trim()}` : ""}`);
  }
}

/** The rank's process went over its `--memory` cap and killed itself (rank-lifeline.ts). */
export class RankMemoryExceeded extends Error {
  override readonly name = "RankMemoryError";
  constructor(
    readonly residentBytes: number,
    readonly capBytes: number,
  ) {
    super(`its process used ${formatSize(residentBytes)} of resident memory, over its --memory cap of ${formatSize(capBytes)}, and was killed`);
  }
}

/** Live rank processes: ended with the kernel, so no rank outlives the kernel that started it. */
const liveChildren = new Set<RankChild>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

export class ProcessRank extends RankHandleBase {
  private child?: RankChild;
  private readonly pending = new Map<number, { resolve(result: RankTaskResult): void; reject(error: unknown): void }>();
  private nextTaskId = 1;
  /** The cell running or run last: what the process writes outside the rank's capture is shown under it. */
  private currentCellId = 0;
  private stderrTail = "";
  /** Set when the rank's process reported it went over its memory cap (it then kills itself). */
  private overCap?: RankMemoryExceeded;
  private closing = false;

  constructor(
    info: RankInfo,
    onEvent: (rank: number, event: RankEvent) => void,
    private readonly launch: RankLaunch | RankStarter,
  ) {
    super(info, onEvent);
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  async init(): Promise<void> {
    const result = (await this.send(this.child ?? this.start(), this.initTaskFields())) as InitResult;
    this.initialised(result);
  }

  run(task: Exclude<RankTask, InitTask>, kill?: AbortSignal): Promise<RankTaskResult> {
    const child = this.child;
    if (!child) return Promise.reject(new Error(`rank ${this.info.rank} has no process (it ended); the next %%distributed cell starts a new one`));
    if (task.kind === "cell") this.currentCellId = task.cellId;
    const onKill = () => child.kill("SIGKILL");
    if (kill?.aborted) onKill();
    kill?.addEventListener("abort", onKill, { once: true });
    return this.send(child, task).finally(() => kill?.removeEventListener("abort", onKill));
  }

  command(command: KernelCommand): void {
    this.post(this.child, { type: "command", command });
  }

  protected get reachable(): boolean {
    return this.child !== undefined;
  }

  protected readonly forcedEnd = "its process was killed";

  protected endedError(error: unknown): RemoteErrorData {
    const data = toRemoteErrorData(error);
    return { ...data, message: `${data.message}; it is restarted for the next cell (state lost)`, stack: "" };
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.closing = true;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // An idle rank exits when its channel closes; one busy in synchronous code is killed.
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill("SIGKILL"), CLOSE_GRACE_MS);
    // A remote rank's exit comes from its agent: one that never answers must not hold the close
    // (and with it `%dist stop` or the kernel's shutdown) forever.
    let giveUp: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([exited, new Promise<void>((resolve) => (giveUp = setTimeout(resolve, 2 * CLOSE_GRACE_MS + 1000)))]);
    clearTimeout(timer);
    clearTimeout(giveUp);
  }

  private start(): RankChild {
    const rankEnv = { [MEMORY_CAP_ENV]: String(this.info.memoryCapBytes ?? 0) };
    const launch = this.launch;
    const child: RankChild =
      typeof launch === "function"
        ? launch(rankEnv)
        : (spawn(launch.command, launch.args, {
            // fd 3: the IPC channel; fd 4 (LIFELINE_FD): the rank's lifeline (rank-lifeline.ts).
            stdio: ["ignore", "pipe", "pipe", "ipc", "pipe"],
            serialization: "advanced",
            env: { ...process.env, ...rankEnv },
          }) as ChildProcess);
    this.child = child;
    this.stderrTail = "";
    this.overCap = undefined;
    liveChildren.add(child);
    this.readLifeline(child);
    child.on("message", (message: FromRankProcess) => this.receive(message));
    for (const name of ["stdout", "stderr"] as const) {
      const stream = child[name]!;
      stream.setEncoding("utf8");
      stream.on("data", (text: string) => {
        if (name === "stderr") this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL_CHARS);
        // Output the rank's capture did not see (native code, Node's own warnings): shown under the current cell.
        this.mailbox.receive({ kind: "stream", cellId: this.currentCellId, name, text });
      });
    }
    // A launch that cannot start (no such program) never exits: it errors instead. Other errors
    // (a message sent as the process died: EPIPE) are followed by its exit, which tells why.
    child.on("error", (error: Error) => {
      if (child.pid === undefined) this.ended(child, error);
    });
    child.on("exit", (code: number | null, signal: NodeJS.Signals | null) => this.ended(child, this.overCap ?? new RankProcessExit(code, signal, this.stderrTail)));
    return child;
  }

  /** The rank's lifeline (rank-lifeline.ts): the kernel only holds it open, and hears why the rank killed itself. */
  private readLifeline(child: RankChild): void {
    const line = child.stdio[LIFELINE_FD] as NodeJS.ReadableStream | null;
    if (!line) return;
    let text = "";
    line.setEncoding("utf8");
    line.on("data", (chunk: string) => {
      text += chunk;
      const end = text.indexOf("\n");
      if (end < 0) return;
      try {
        const report = JSON.parse(text.slice(0, end)) as LifelineReport;
        if ("memoryExceeded" in report) this.overCap = new RankMemoryExceeded(report.memoryExceeded.residentBytes, report.memoryExceeded.capBytes);
      } catch {
        // Not a report: nothing to add to the exit's own reason.
      }
      text = text.slice(end + 1);
    });
    line.on("error", () => undefined);
  }

  /** The process `child` is gone: every task it had fails with `reason`, and the next init starts a new one. */
  private ended(child: RankChild, reason: Error): void {
    liveChildren.delete(child);
    if (this.child !== child) return;
    this.child = undefined;
    this.needsInit = true;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const task of waiting) task.reject(reason);
    // With a task running, the cell reports the end; an idle rank's end is told when the next cell starts.
    if (waiting.length === 0 && !this.closing) this.endedWhileIdle = reason.message;
  }

  private send(child: RankChild, task: RankTask): Promise<RankTaskResult> {
    const id = this.nextTaskId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.post(child, { type: "task", id, task });
      } catch (error) {
        // e.g. `%dist push` of a function: nothing was sent.
        this.pending.delete(id);
        reject(error);
      }
    });
  }

  private post(child: RankChild | undefined, message: ToRankProcess): void {
    if (child?.connected) child.send(message);
  }

  private receive(message: FromRankProcess): void {
    if (message.type === "event") {
      this.mailbox.receive(message.event);
      return;
    }
    const task = this.pending.get(message.id);
    this.pending.delete(message.id);
    if (message.type === "result") task?.resolve(message.result);
    else task?.reject(new RankTaskFailed(message.error));
  }
}
