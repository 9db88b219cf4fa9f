/**
 * One rank process an agent starts for its kernel: the same child as a rank
 * of `--backend processes` (cluster/rank-side/process-entry.ts), its IPC
 * channel, output and lifeline relayed over the kernel's control connection
 * as `ToKernel` messages (control.ts). The agent's session (agent.ts) decides
 * whether a rank may start (slots, its GPU) and keeps the processes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Duplex, Readable } from "node:stream";
import type { FromRankProcess } from "../cluster/rank-messages";
import { nodeRankCommand } from "../cluster/backends/processes/process-rank-handle";
import { LIFELINE_FD, LIFELINE_SILENCE_ENV, MEMORY_CAP_ENV, RANK_HEARTBEAT_MS, RANK_LIFELINE_SILENCE_MS } from "../cluster/rank-side/rank-lifeline";
import { LISTEN_HOST_ENV } from "../cluster/comm-world";
import type { sendControl } from "./control";
import { DATA_RELAY_ENV } from "./data-relay";

export interface RankProcessOptions {
  rank: number;
  /** the rank's memory cap, bytes (its process enforces it) */
  memoryCapBytes: number;
  /** the GPU it gets alone (CUDA_VISIBLE_DEVICES), if any */
  gpu: number | undefined;
  /** where the rank listens for its TCP world: the address the kernel reached the agent at */
  listenHost: string;
  /** --data-via ssh: the agent's relay socket the rank dials its peers through */
  dataRelay: string | undefined;
  /** Sends a message to the kernel (dropped once its connection is gone). */
  send(message: Parameters<typeof sendControl>[1]): void;
  /** The process has gone (it exited, or never started): the session stops counting it. */
  forget(child: ChildProcess): void;
}

/** Starts the rank's process and relays everything it says; the caller keeps the process to stop it. */
export function startRankProcess(options: RankProcessOptions): ChildProcess {
  const [command, ...args] = nodeRankCommand();
  const child = spawn(command!, args, {
    stdio: ["ignore", "pipe", "pipe", "ipc", "pipe"],
    serialization: "advanced",
    env: {
      ...process.env,
      [MEMORY_CAP_ENV]: String(options.memoryCapBytes),
      [LISTEN_HOST_ENV]: options.listenHost,
      // the rank ends itself when this agent's heartbeat stops (a stopped agent keeps the lifeline open)
      [LIFELINE_SILENCE_ENV]: process.env[LIFELINE_SILENCE_ENV] || String(RANK_LIFELINE_SILENCE_MS),
      ...(options.dataRelay !== undefined ? { [DATA_RELAY_ENV]: options.dataRelay } : {}),
      ...(options.gpu === undefined ? {} : { CUDA_VISIBLE_DEVICES: String(options.gpu) }),
    },
  });
  const lifeline = child.stdio[LIFELINE_FD] as Duplex | null;
  const heartbeat = setInterval(() => {
    if (lifeline?.writable) lifeline.write("\n");
  }, RANK_HEARTBEAT_MS);
  heartbeat.unref();
  child.once("close", () => clearInterval(heartbeat));
  const { rank, send } = options;
  child.on("message", (message: FromRankProcess) => {
    try {
      send({ type: "from-rank", rank, message });
    } catch (error) {
      if (message.type === "result") send({ type: "from-rank", rank, message: { type: "failed", id: message.id, error: { name: "DataCloneError", message: (error as Error).message, stack: "" } } });
    }
  });
  const relay = (stream: Readable | null | undefined, name: "stdout" | "stderr" | "lifeline") => {
    stream?.setEncoding("utf8");
    stream?.on("data", (text: string) => send({ type: "output", rank, stream: name, text }));
    stream?.on("error", () => undefined);
  };
  relay(child.stdout, "stdout");
  relay(child.stderr, "stderr");
  relay(child.stdio[LIFELINE_FD] as Readable | null, "lifeline");
  child.once("spawn", () => send({ type: "spawned", rank, pid: child.pid! }));
  child.on("error", (error) => {
    if (child.pid === undefined) {
      options.forget(child);
      send({ type: "exit", rank, code: null, signal: null, error: error.message });
    }
  });
  // "close": after exit and after its output was read, so the kernel has every line before the end.
  child.once("close", (code, signal) => {
    options.forget(child);
    if (child.pid !== undefined) send({ type: "exit", rank, code, signal });
  });
  return child;
}
