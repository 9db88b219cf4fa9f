/**
 * Every message between the kernel and its thread ranks, and nothing else.
 *
 * Two channels per rank:
 * - piscina tasks (`RankTask` -> `RankTaskResult`): request/response work that
 *   occupies the rank (init, run a cell, push/pull a variable);
 * - one MessagePort per rank, handed over by the `init` task, for traffic
 *   that must flow while a task runs (`RankEvent` up: output as it is
 *   printed, status answers; `KernelCommand` down: cancel, status queries).
 *
 * Values cross by structured clone; typed arrays keep their type, tf.Tensors
 * are turned into `TensorWire` by the rank before they cross.
 */
import type { MessagePort } from "node:worker_threads";
import type { RemoteErrorData } from "../errors";
import type { DisplayPayload } from "../protocol/backend";
import type { CompiledCell } from "../repl/cell-compiler";
import type { TfBackendName } from "../magics/distributed-spec";
import type { LinkModel } from "../comm/types";

/** Shape of the group a rank belongs to; a change restarts the group. */
export interface GroupShape {
  size: number;
  backend: "threads";
  link?: LinkModel;
  tfBackend?: TfBackendName;
}

export interface InitTask {
  kind: "init";
  rank: number;
  size: number;
  localRank: number;
  host: string;
  /** Undefined: the best available (webgpu on a GPU, tensorflow, wasm, cpu; compute/backend-choice.ts). */
  tfBackend?: TfBackendName;
  port: MessagePort;
}

/**
 * Joins the rank to a communication world. Sent after init, and again to
 * every rank whenever the world is rebuilt (a rank respawned, the timeout
 * changed); the rank's declarations are kept.
 */
export interface ConnectTask {
  kind: "connect";
  /** The world's shared memory, created by the kernel (see comm-world.ts). */
  commState: unknown;
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

export type CellResult =
  | { kind: "cell"; ok: true; value: CellValue }
  | { kind: "cell"; ok: false; error: RemoteErrorData; cancelled: boolean };

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
  | { kind: "status"; requestId: number; heapUsedBytes: number; heapLimitBytes: number; tfBackend: string; busy: boolean }
  /** Span batches for the timeline (a trace `SpanBatch`: spans on the rank's epoch clock, microseconds). */
  | { kind: "trace"; cellId: number; batch: unknown };

/** Kernel -> rank, on the rank's port. */
export type KernelCommand =
  | { kind: "cancel"; cellId: number; reason: string }
  | { kind: "status"; requestId: number };
