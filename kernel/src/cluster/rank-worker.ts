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
import type { Communicator } from "../comm/types";
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
import { RankScope } from "./rank-scope";
import { joinCommWorld } from "./comm-world";
import { commSpanHook, GroupRegistry } from "./comm-spans";
import { loadTf, type LoadedTf } from "./tf-setup";
import { createRankRecorder, type SpanBatch, type SpanRecorder } from "../trace";

interface RankState {
  init: InitTask;
  port: MessagePort;
  scope: RankScope;
  loaded: LoadedTf;
  dist?: Dist;
  /** The communicator of the current world; replaced when the kernel rebuilds the world. */
  comm?: Communicator;
  /** Spans of this rank for the timeline; posted to the kernel in batches tagged with the running cell. */
  recorder: SpanRecorder;
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
  const loaded = await loadTf(task.tfBackend);
  const scope = new RankScope(port, { tf: loaded.tf, prompt: rankPrompt });
  const recorder = createRankRecorder({
    rank: task.rank,
    enabled: false,
    // The cell id is read when the batch leaves, so spans flushed at a cell's end carry that cell.
    post: (batch: SpanBatch) => port.postMessage({ kind: "trace", cellId: state?.cellId ?? 0, batch } satisfies RankEvent),
  });
  state = { init: task, port, scope, loaded, recorder, cellId: 0 };
  port.on("message", (command: KernelCommand) => onCommand(command));
  return { kind: "init", tfBackend: loaded.backend, device: loaded.device };
}

async function connect(task: ConnectTask): Promise<ConnectResult> {
  const rank = requireState();
  const groups = new GroupRegistry();
  const onSpan = commSpanHook(rank.recorder, rank.init.rank, groups);
  const comm = groups.track(joinCommWorld(task.commState, rank.init.rank, { timeoutMs: task.timeoutMs, link: task.link, onSpan }));
  rank.comm = comm;
  if (!rank.dist) {
    // One `dist` per rank thread for its whole life: it reaches the newest world through `rank.comm`,
    // so functions from earlier cells keep working after the world is rebuilt.
    const { init } = rank;
    rank.dist = createDist(
      { rank: init.rank, size: init.size, localRank: init.localRank, host: init.host, device: rank.loaded.device },
      () => requireState().comm!,
      rank.loaded.tf,
      rank.recorder,
    );
    rank.scope.setGlobal("dist", rank.dist);
  }
  return { kind: "connect" };
}

async function runCell(task: CellTask): Promise<CellResult> {
  const rank = requireState();
  rank.cellId = task.cellId;
  const controller = new AbortController();
  rank.running = controller;
  rank.recorder.setEnabled(task.timeline);
  try {
    // The cancel switch ends pending awaits (timers, fetches) at once; the abandoned promise settles unobserved.
    // The whole body is one compute span: time outside the user's and the collectives' spans counts as compute.
    const value = await rank.recorder.span(task.cellName, () => rank.scope.run(task.cell, task.cellId, task.cellName, controller.signal), { args: { cell: true } });
    return { kind: "cell", ok: true, value: toCellValue(value) };
  } catch (error) {
    // A collective woken by the world's cancel word may throw before the cancel message is read.
    const cancelled = controller.signal.aborted || (error as Error | undefined)?.name === "CommCancelledError";
    return { kind: "cell", ok: false, error: toRemoteErrorData(error), cancelled };
  } finally {
    rank.running = undefined;
    // Every span reaches the kernel before the end marker (one port, FIFO).
    rank.recorder.flush();
    const end: RankEvent = { kind: "cell-end", cellId: task.cellId };
    rank.port.postMessage(end);
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
    if (rank.running && rank.cellId === command.cellId) rank.running.abort(command.reason);
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

async function rankPrompt(): Promise<string> {
  throw new Error("prompt() is not available on a rank: ranks have no stdin; read it in a plain cell and %dist push it");
}


function requireState(): RankState {
  if (!state) throw new Error("rank used before its init task ran");
  return state;
}
