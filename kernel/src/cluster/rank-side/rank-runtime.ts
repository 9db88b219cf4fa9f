/**
 * What a rank does with the kernel's tasks, wherever the rank lives (a
 * worker thread of the kernel or a child process). Holds the rank's state
 * for the life of its thread or process: the `RankScope` with the rank's
 * declarations, `globalThis.dist` and `globalThis.tf`, the world it joined,
 * and the port to the kernel. Every task resolves with a result object; it
 * never rejects for a cell's error, so errors keep their name, message and
 * mapped stack across the thread or process line. Errors no task awaits (a
 * late rejection, a throw in a timer) become `background-error` events
 * (rank-guard.ts) instead of the end of the rank.
 */
import { getHeapStatistics } from "node:v8";
import { toRemoteErrorData } from "../../errors";
import { toCellValue } from "./cell-value";
import { readTensorsForDisplay } from "./cell-value-read";
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
} from "../rank-messages";
import type { RankPort } from "./rank-port";
import { RankScope } from "./rank-scope";
import { joinCommWorld, type JoinedWorld } from "../comm-world";
import { commSpanHook, GroupRegistry } from "./comm-spans";
import { commThreadSpanHook } from "./comm-thread-spans";
import { cellNeedsTf, RankTf, TF_NOT_LOADED } from "./rank-tf";
import { createRankRecorder, type SpanBatch, type SpanRecorder } from "../../trace";
import { WireCounters } from "../../comm/wire-counters";
import { guardRankErrors, type BackgroundErrorOrigin } from "./rank-guard";
import { CellEpochs } from "./cell-epochs";

interface RankState {
  init: InitTask;
  port: RankPort;
  scope: RankScope;
  /** TensorFlow.js, loaded at init or before the first cell that needs it (rank-tf.ts). */
  tf: RankTf;
  /** What `dist.device` and `%dist status` show: the backend's device, with the GPU node on a gpus rank. */
  device: string;
  dist?: Dist;
  /** The world joined last; replaced when the kernel rebuilds the world. */
  world?: JoinedWorld;
  /** The cell id current when `world` was joined: it serves the cells after that one. */
  worldJoinedAfterCell: number;
  /** Spans of this rank for the timeline; posted to the kernel in batches tagged with the running cell. */
  recorder: SpanRecorder;
  /** What this rank's transports moved, across every world it joins (dist.stats, %dist status). */
  wire: WireCounters;
  /** The cell each communication call belongs to (its epoch), and whether that cell is still running. */
  epochs: CellEpochs;
  /** The running (or last) cell's id and cancel switch. */
  cellId: number;
  running?: AbortController;
}

export type RankTaskHandler = (task: RankTask) => Promise<RankTaskResult>;

/** A handler for one rank; `portFor` gives the port to the kernel when the init task comes. */
export function createRankRuntime(portFor: (task: InitTask) => RankPort): RankTaskHandler {
  let state: RankState | undefined;
  /** Ports whose commands reach onCommand (a thread rank initialised again gets a new port). */
  const listening = new WeakSet<RankPort>();
  const requireState = (): RankState => {
    if (!state) throw new Error("rank used before its init task ran");
    return state;
  };

  /** A rejection or throw no task waits for: told under the running (or last) cell; the rank keeps going. */
  function reportBackgroundError(error: unknown, origin: BackgroundErrorOrigin): void {
    const rank = state;
    if (!rank) {
      process.stderr.write(`distlab rank: ${origin} before the rank was initialised: ${toRemoteErrorData(error).stack}\n`);
      return;
    }
    const mapped = mapErrorSafely(rank.scope, error);
    rank.port.postMessage({ kind: "background-error", cellId: rank.cellId, origin, error: toRemoteErrorData(mapped) });
  }
  guardRankErrors(reportBackgroundError);

  async function initialise(task: InitTask): Promise<InitResult> {
    const port = portFor(task);
    const tf = new RankTf(task.tfBackend, task.rank);
    // A backend the user named (or a GPU rank's) loads now, so that one which cannot load fails the start.
    if (task.tfBackend !== undefined || task.gpu !== undefined) await tf.load();
    const scope = new RankScope(port, { tf: tf.loaded?.tf ?? tf.lazyTf, prompt: rankPrompt });
    const recorder = createRankRecorder({
      rank: task.rank,
      enabled: false,
      // The cell id is read when the batch leaves, so spans flushed at a cell's end carry that cell.
      post: (batch: SpanBatch) => port.postMessage({ kind: "trace", cellId: state?.cellId ?? 0, batch } satisfies RankEvent),
    });
    const device = deviceOf(task, tf);
    if (!listening.has(port)) {
      listening.add(port);
      port.on("message", (command: KernelCommand) => onCommand(command));
    }
    state = { init: task, port, scope, tf, device, recorder, wire: new WireCounters(task.rank), epochs: new CellEpochs(task.rank), cellId: 0, worldJoinedAfterCell: 0 };
    return { kind: "init", tfBackend: tf.loaded?.backend ?? TF_NOT_LOADED, device };
  }

  async function connect(task: ConnectTask): Promise<ConnectResult> {
    const rank = requireState();
    // The kernel rebuilds the world after a cancel, timeout change or respawn: the old one is done.
    rank.world?.close();
    rank.world = undefined;
    const groups = new GroupRegistry();
    const onSpan = commSpanHook(rank.recorder, rank.init.rank, groups);
    const world = await joinCommWorld(task.commState, {
      rank: rank.init.rank,
      size: rank.init.size,
      timeoutMs: task.timeoutMs,
      onSpan,
      onCommThreadSpan: commThreadSpanHook(rank.recorder, rank.init.rank, rank.init.size),
      wire: rank.wire,
      epoch: rank.epochs.epochOf,
      ...(task.link ? { link: task.link } : {}),
    });
    groups.track(world.comm);
    rank.world = world;
    rank.worldJoinedAfterCell = rank.cellId;
    if (!rank.dist) {
      // One `dist` per rank for its whole life: it reaches the newest world through `rank.world`,
      // so functions from earlier cells keep working after the world is rebuilt.
      const { init } = rank;
      rank.dist = createDist(
        { rank: init.rank, size: init.size, localRank: init.localRank, host: init.host, device: rank.device },
        () => requireState().world!.comm,
        rank.tf.lazyTf,
        rank.recorder,
        rank.wire,
        () => requireState().world?.commThread,
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
    let tfLoaded: Awaited<ReturnType<typeof loadTfFor>> = {};
    try {
      tfLoaded = await loadTfFor(rank, task);
      // The cancel switch ends pending awaits (timers, fetches) at once; the abandoned promise settles unobserved.
      // The whole body is one compute span: time outside the user's and the collectives' spans counts as compute.
      // Communication started by this cell's code carries its id, and is refused once the cell has ended.
      const value = await rank.epochs.run(task.cellId, () =>
        rank.recorder.span(task.cellName, () => rank.scope.run(task.cell, task.cellId, task.cellName, controller.signal), { args: { cell: true } }),
      );
      // the checks socket worlds leave behind a call (a root's agreement frames, agreement-window.ts) pass or fail the cell that made it
      await rank.world?.comm.settle();
      return { kind: "cell", ok: true, value: toCellValue(await readTensorsForDisplay(value)), ...tfLoaded };
    } catch (error) {
      // A collective woken by the world's cancel may throw before the cancel command is read.
      const data = toRemoteErrorData(error);
      const cancelled = controller.signal.aborted || data.name === "CommCancelledError";
      return { kind: "cell", ok: false, error: data, cancelled, ...tfLoaded };
    } finally {
      rank.running = undefined;
      // Every span reaches the kernel before the end marker (one port, FIFO).
      rank.recorder.flush();
      rank.port.postMessage({ kind: "cell-end", cellId: task.cellId });
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
      // A thread rank may read a cancel before its cell task (two channels), so the cell id alone
      // cannot tell a cancel of the coming cell from a late one of a cell whose world is gone.
      if (command.cellId > rank.worldJoinedAfterCell) rank.world?.cancel(command.reason);
      if (rank.running && rank.cellId === command.cellId) rank.running.abort(command.reason);
      return;
    }
    const heap = getHeapStatistics();
    rank.port.postMessage({
      kind: "status",
      requestId: command.requestId,
      heapUsedBytes: heap.used_heap_size,
      heapLimitBytes: heap.heap_size_limit,
      tfBackend: rank.tf.loaded?.backend ?? TF_NOT_LOADED,
      busy: rank.running !== undefined,
      wire: rank.wire.snapshot(),
    });
  }

  return async (task) => {
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
  };
}

/**
 * What `dist.device` shows: the backend's device, with the GPU node on a gpus rank. Before
 * TensorFlow.js is loaded the rank computes on the CPU with plain JavaScript: "cpu:tfjs not loaded yet".
 */
function deviceOf(task: InitTask, tf: RankTf): string {
  const device = tf.loaded?.device ?? `cpu:tfjs ${TF_NOT_LOADED}`;
  return task.gpu ? `${task.gpu.node} ${device}` : device;
}

/**
 * Loads TensorFlow.js before a cell that needs it, the first time one does, and hands it to the
 * cell's scope. Returns what the cell result tells the kernel (the backend and device now in use),
 * or nothing when nothing changed. A load that fails is the cell's error; the next cell that needs
 * TensorFlow.js tries again.
 */
async function loadTfFor(rank: RankState, task: CellTask): Promise<{ tf?: { backend: string; device: string } }> {
  if (rank.tf.loaded || !cellNeedsTf(task.cell.source)) return {};
  const loaded = await rank.tf.load();
  rank.scope.setGlobal("tf", loaded.tf);
  rank.device = deviceOf(rank.init, rank.tf);
  // `dist.device` was read from the identity at connect; it follows the backend now chosen.
  if (rank.dist) Object.defineProperty(rank.dist, "device", { value: rank.device, enumerable: true, configurable: true });
  return { tf: { backend: loaded.backend, device: rank.device } };
}

/** Frames of cell code mapped to the cell's lines, unless the value resists being read. */
function mapErrorSafely(scope: RankScope, error: unknown): unknown {
  try {
    return scope.mapError(error);
  } catch {
    return error;
  }
}

async function rankPrompt(): Promise<string> {
  throw new Error("prompt() is not available on a rank: ranks have no stdin; read it in a plain cell and %dist push it");
}
