/**
 * A rank process that an agent runs, as the kernel's ProcessRank sees it
 * (process-rank-handle.ts's RankChild): tasks and commands go out as control
 * messages, results, events and output come back, and the process's end
 * (or the loss of the agent's connection) is its "exit". Everything else
 * (pending tasks, restarts, lost state, the errors users see) is the
 * processes backend's own code.
 */
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import type { ToRankProcess } from "../cluster/rank-messages";
import type { RankChild } from "../cluster/backends/processes/process-rank-handle";
import { MEMORY_CAP_ENV } from "../cluster/rank-side/rank-lifeline";
import type { AgentLink } from "./agent-link";
import type { FromAgent } from "./control";

export class RemoteRankChild extends EventEmitter implements RankChild {
  pid?: number;
  connected = true;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  private readonly lifeline = new PassThrough();
  readonly stdio: ReadonlyArray<unknown> = [null, this.stdout, this.stderr, null, this.lifeline];
  private exited = false;
  private readonly unlisten: () => void;

  constructor(
    private readonly link: AgentLink,
    private readonly rank: number,
    env: Record<string, string>,
    /** The host's GPU for this rank (hostfile gpus=); the agent makes it the only one the rank sees. */
    gpu?: number,
  ) {
    super();
    this.unlisten = link.listen(rank, (message) => this.receive(message));
    try {
      link.send({ type: "spawn", rank, memoryCapBytes: Number(env[MEMORY_CAP_ENV] ?? 0), ...(gpu === undefined ? {} : { gpu }) });
    } catch (error) {
      // Told after the caller has attached its listeners.
      setImmediate(() => this.receive({ type: "exit", rank, code: null, signal: null, error: (error as Error).message }));
    }
  }

  send(message: ToRankProcess): boolean {
    this.link.send({ type: "to-rank", rank: this.rank, message });
    return true;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): boolean {
    if (this.exited) return false;
    try {
      this.link.send({ type: "signal", rank: this.rank, signal });
    } catch {
      // The connection is gone: the agent has stopped this kernel's ranks itself.
    }
    return true;
  }

  disconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    try {
      this.link.send({ type: "disconnect", rank: this.rank });
    } catch {
      // As in kill().
    }
  }

  private receive(message: FromAgent): void {
    if (this.exited) return;
    switch (message.type) {
      case "spawned":
        this.pid = message.pid;
        return;
      case "from-rank":
        this.emit("message", message.message);
        return;
      case "output":
        (message.stream === "lifeline" ? this.lifeline : this[message.stream]).write(message.text);
        return;
      case "exit":
        this.exited = true;
        this.connected = false;
        this.unlisten();
        if (message.error) this.stderr.write(`${message.error}\n`);
        // After the streams have handed on what was written to them: the exit's reason quotes the last stderr.
        setImmediate(() => {
          this.stdout.end();
          this.stderr.end();
          this.lifeline.end();
          this.emit("exit", message.code, message.signal);
        });
        return;
    }
  }
}
