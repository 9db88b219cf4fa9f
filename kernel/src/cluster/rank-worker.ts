/**
 * Entry point of a thread rank (a piscina pool of one thread). Holds the
 * rank's state for the life of its thread: the `CellScope` with the rank's
 * declarations, `globalThis.dist` and `globalThis.tf`, and the port to the
 * kernel. Every task resolves with a result object; it never rejects, so
 * errors keep their name, message and mapped stack across the thread line.
 */
import type { MessagePort } from "node:worker_threads";
import { getHeapStatistics } from "node:v8";
import { toRemoteErrorData } from "../errors";
import { toCellValue } from "./cell-value";
import { createDist, type Dist } from "./dist-api";
import type {
  CellResult,
  CellTask,
  ConnectResult,
  ConnectTask,
  InitResult,
  InitTask,
  KernelCommand,
  RankEvent,
  RankTask,
  RankTaskResult,
  VariableResult,
} from "./protocol";
import { captureOutput } from "./rank-console";
import { createRankScope, type RankScope } from "./rank-scope";
import { joinCommWorld } from "./comm-world";
import { loadTf, type LoadedTf } from "./tf-setup";

interface RankState {
  init: InitTask;
  port: MessagePort;
  scope: RankScope;
  loaded: LoadedTf;
  dist?: Dist;
  /** The running cell's id and cancel switch. */
  cellId: number;
  running?: AbortController;
}

let state: RankState | undefined;

export default async function handleTask(task: RankTask): Promise<RankTaskResult> {
  switch (task.kind) {
    case "init":
      return initialise(task);
    case "connect":
      return connect(task);
    case "cell":
      return runCell(task);
    case "push":
    case "pull":
      return variable(task);
  }
}

async function initialise(task: InitTask): Promise<InitResult> {
  const port = task.port;
  const current = { cellId: 0 };
  captureOutput(port, () => state?.cellId ?? current.cellId);
  const loaded = await loadTf(task.tfBackend);
  const scope = createRankScope();
  state = { init: task, port, scope, loaded, cellId: 0 };
  port.on("message", (command: KernelCommand) => onCommand(command));
  return { kind: "init", tfBackend: loaded.backend, device: deviceName(loaded.backend) };
}

async function connect(task: ConnectTask): Promise<ConnectResult> {
  const rank = requireState();
  const comm = joinCommWorld(task.commState, rank.init.rank, { timeoutMs: task.timeoutMs, link: task.link });
  const { init } = rank;
  rank.dist = createDist(
    { rank: init.rank, size: init.size, localRank: init.localRank, host: init.host, device: deviceName(rank.loaded.backend) },
    comm,
    rank.loaded.tf,
  );
  return { kind: "connect" };
}

async function runCell(task: CellTask): Promise<CellResult> {
  const rank = requireState();
  rank.cellId = task.cellId;
  const controller = new AbortController();
  rank.running = controller;
  try {
    const globals = { dist: rank.dist, tf: rank.loaded.tf, prompt: rankPrompt };
    // Racing the cell against the cancel switch makes pending awaits (timers,
    // fetches) end the cell at once; the abandoned promise settles unobserved.
    const value = await Promise.race([rank.scope.run(task.cell, globals), rejectOnAbort(controller.signal)]);
    return { kind: "cell", ok: true, value: toCellValue(value) };
  } catch (error) {
    const cancelled = controller.signal.aborted;
    return { kind: "cell", ok: false, error: rank.scope.mapError(toRemoteErrorData(error)), cancelled };
  } finally {
    rank.running = undefined;
  }
}

async function variable(task: Extract<RankTask, { kind: "push" | "pull" }>): Promise<VariableResult> {
  const rank = requireState();
  try {
    if (task.kind === "push") {
      rank.scope.set(task.name, task.value);
      return { kind: "variable", ok: true };
    }
    return { kind: "variable", ok: true, value: rank.scope.get(task.name) };
  } catch (error) {
    return { kind: "variable", ok: false, error: toRemoteErrorData(error) };
  }
}

function onCommand(command: KernelCommand): void {
  const rank = state;
  if (!rank) return;
  if (command.kind === "cancel") {
    if (rank.running && rank.cellId === command.cellId) rank.running.abort(new CancelledError(command.reason));
    return;
  }
  const heap = getHeapStatistics();
  const event: RankEvent = {
    kind: "status",
    requestId: command.requestId,
    heapUsedBytes: heap.used_heap_size,
    heapLimitBytes: heap.heap_size_limit,
    tfBackend: rank.loaded.backend,
    busy: rank.running !== undefined,
  };
  rank.port.postMessage(event);
}

class CancelledError extends Error {
  override readonly name = "CancelledError";
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
}

async function rankPrompt(): Promise<string> {
  throw new Error("prompt() is not available on a rank: ranks have no stdin; read input in a plain cell and %dist push it");
}

function deviceName(tfBackend: string): string {
  return tfBackend === "webgpu" ? "gpu:webgpu" : `cpu:${tfBackend}`;
}

function requireState(): RankState {
  if (!state) throw new Error("rank used before its init task ran");
  return state;
}
