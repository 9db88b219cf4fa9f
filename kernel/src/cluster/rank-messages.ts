/**
 * Every message between the kernel and its ranks, and nothing else.
 *
 * Two kinds of traffic per rank:
 * - tasks (`RankTask` -> `RankTaskResult`): request/response work that
 *   occupies the rank (init, join a world, run a cell, push/pull a variable);
 * - traffic that must flow while a task runs (`RankEvent` up: output as it
 *   is printed, status answers; `KernelCommand` down: cancel, status queries).
 *
 * A thread rank gets tasks through piscina and the rest on a MessagePort the
 * `init` task hands over. A process rank gets both on its IPC channel, in
 * `ToRankProcess` / `FromRankProcess` envelopes (one channel, so an event
 * posted before a task's result arrives before it).
 *
 * Values cross by structured clone (process ranks: Node's "advanced" IPC
 * serialization, the same algorithm); typed arrays keep their type,
 * tf.Tensors are turned into `TensorWire` by the rank before they cross.
 */
import type { MessagePort } from "node:worker_threads";
import type { RemoteErrorData } from "../errors";
import type { DisplayPayload } from "../protocol/backend";
import type { CompiledCell } from "../repl/cell-compiler";
import type { TfBackendName } from "../compute/backend-names";
import type { LinkModel } from "../comm/types";
import type { ShmWorldInit } from "../comm/shm-layout";
import type { WireStats } from "../comm/wire-stats";

/** Backends that start ranks: on this machine (threads, processes, gpus) or through agents on other hosts. */
export type LocalBackendName = "threads" | "processes" | "gpus" | "hosts";

/** Shape of the group a rank belongs to; a change restarts the group. */
export interface GroupShape {
  size: number;
  backend: LocalBackendName;
  link?: LinkModel;
  tfBackend?: TfBackendName;
  /** The most memory each rank may hold (bytes): `--memory`, or its default for this size. */
  memoryCapBytes: number;
  /** `--backend hosts`: the `--hosts` SPEC and `--token-file` as given (a change starts a new group). */
  hosts?: string;
  tokenFile?: string;
}

/** The GPU a `--backend gpus` rank was given: the only one its process can open. */
export interface GpuAssignment {
  /** Position in the sorted list of GPU device nodes (0 for /dev/nvidia0 on most machines). */
  index: number;
  /** e.g. "/dev/nvidia1" */
  node: string;
}

/** A TCP world: every rank dials the kernel's rendezvous (host:port) to learn its peers. */
export interface TcpWorldAddress {
  kind: "tcp";
  rendezvous: string;
  /** The world's id and its secret (64 hex digits): only ever sent inside a connect task (comm/data-handshake.ts). */
  world: string;
  secret: string;
  /** TLS on the connections between hosts (comm/data-tls.ts). */
  tls: boolean;
  /**
   * The rendezvous and credentials of the world of the ranks' communication threads (process
   * ranks on one host), when they have them; sent, like the world's own, inside a connect task only.
   */
  commThread?: { rendezvous: string; world: string; secret: string };
}

/**
 * Thread ranks' world: the ranks' shared memory, and the world their
 * communication threads join (comm/comm-thread.ts), one rank each.
 */
export type ShmWorldAddress = ShmWorldInit & { commThreadWorld?: ShmWorldInit };

/** What a rank needs to join a world: the shared memory of thread ranks, or a TCP rendezvous. */
export type WorldAddress = ShmWorldAddress | TcpWorldAddress;

export interface InitTask {
  kind: "init";
  rank: number;
  size: number;
  localRank: number;
  host: string;
  /** Undefined: the best available (webgpu on a GPU, tensorflow, wasm, cpu; compute/backend-choice.ts). */
  tfBackend?: TfBackendName;
  /** Thread ranks only: the port for events and commands (a process rank uses its IPC channel). */
  port?: MessagePort;
  /** `--backend gpus` only: the GPU this rank's process was left with. */
  gpu?: GpuAssignment;
}

/**
 * Joins the rank to a communication world. Sent after init, and again to
 * every rank whenever the world is rebuilt (a rank respawned, the timeout
 * changed); the rank's declarations are kept.
 */
export interface ConnectTask {
  kind: "connect";
  /** Created by the kernel (see comm-world.ts). */
  commState: WorldAddress;
  /** How long a collective waits for a peer, milliseconds. */
  timeoutMs: number;
  link?: LinkModel;
}

export interface ConnectResult {
  kind: "connect";
}

export interface InitResult {
  kind: "init";
  tfBackend: string;
  device: string;
}

export interface CellTask {
  kind: "cell";
  cellId: number;
  /** Compiled once by the kernel (declarations left out: ranks only run the code). */
  cell: CompiledCell;
  /** Names the cell in stack frames, `<cell 5>:line:col`, after the execution count. */
  cellName: string;
  /** Record spans for the timeline (false with `--no-timeline`). */
  timeline: boolean;
}

/** A tf.Tensor as it crosses the wire. */
export interface TensorWire {
  __distlabTensor: true;
  dtype: string;
  shape: number[];
  data: ArrayLike<number | string | boolean>;
}

/** The last expression's value, made structured-clone and JSON friendly by the rank. */
export interface CellValue {
  /** Undefined when the cell ended in a statement or `undefined`. */
  json?: unknown;
  /** What `text/plain` shows for this rank. */
  text?: string;
}

/** Set on the result of the cell before which the rank loaded TensorFlow.js (rank-side/rank-tf.ts). */
export interface TfLoaded {
  tf?: { backend: string; device: string };
}

export type CellResult =
  | ({ kind: "cell"; ok: true; value: CellValue } & TfLoaded)
  | ({ kind: "cell"; ok: false; error: RemoteErrorData; cancelled: boolean } & TfLoaded);

export interface PushTask {
  kind: "push";
  name: string;
  value: unknown;
}

export interface PullTask {
  kind: "pull";
  name: string;
}

export type VariableResult =
  | { kind: "variable"; ok: true; value?: unknown }
  | { kind: "variable"; ok: false; error: RemoteErrorData };

/**
 * A thread rank's task that threw in the rank's own code (not the cell's: a cell's error is a
 * `CellResult`), e.g. a pulled value that cannot be copied. The thread and its state live on.
 */
export interface TaskFailed {
  kind: "failed";
  error: RemoteErrorData;
}

export type RankTask = InitTask | ConnectTask | CellTask | PushTask | PullTask;
export type RankTaskResult = InitResult | ConnectResult | CellResult | VariableResult;

/** Rank -> kernel, on the rank's port. */
export type RankEvent =
  | { kind: "stream"; cellId: number; name: "stdout" | "stderr"; text: string }
  /** tslab/distlab display API called on a rank; shown under the cell as is. */
  | { kind: "display"; cellId: number; payload: DisplayPayload; update: boolean }
  | { kind: "clear"; cellId: number; wait: boolean }
  /** Posted after the cell's last output: a port is FIFO, so the kernel knows it has all of it. */
  | { kind: "cell-end"; cellId: number }
  | { kind: "status"; requestId: number; heapUsedBytes: number; heapLimitBytes: number; tfBackend: string; busy: boolean; wire: WireStats }
  /**
   * An error no task was waiting for (rank-guard.ts): a rejection nobody handled, a throw in a timer.
   * `cellId` is the cell running when it happened, or the last one run (the stack names the cell that caused it).
   */
  | { kind: "background-error"; cellId: number; origin: "unhandled rejection" | "uncaught exception"; error: RemoteErrorData }
  /** Span batches for the timeline (a trace `SpanBatch`: spans on the rank's epoch clock, microseconds). */
  | { kind: "trace"; cellId: number; batch: unknown };

/** Kernel -> rank, on the rank's port. */
export type KernelCommand =
  | { kind: "cancel"; cellId: number; reason: string }
  | { kind: "status"; requestId: number };

/** Kernel -> process rank, on its IPC channel. */
export type ToRankProcess =
  | { type: "task"; id: number; task: RankTask }
  | { type: "command"; command: KernelCommand };

/** Process rank -> kernel, on its IPC channel. `failed`: the task threw (a rank bug, not a cell error). */
export type FromRankProcess =
  | { type: "result"; id: number; result: RankTaskResult }
  | { type: "failed"; id: number; error: RemoteErrorData }
  | { type: "event"; event: RankEvent };
