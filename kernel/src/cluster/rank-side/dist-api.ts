/**
 * The `dist` global of a rank: the group's identity plus collectives that
 * delegate to the COLLECTIVES layer's `Communicator`. Collectives here take
 * what a notebook holds (typed arrays, tf.Tensors, numbers, number arrays)
 * and give back the same kind: a tensor in, a tensor of the same dtype out.
 */
import type { CommThread } from "../../comm/comm-thread";
import type { AllReduceOptions, CollectiveOptions, CommArray, Communicator, ReduceOp } from "../../comm/types";
import { isSpanCategory, SPAN_CATEGORIES, STEP_STREAM, type SpanOptions, type SpanRecorder } from "../../trace";
import type { WireCounters } from "../../comm/wire-counters";
import type { WireStats } from "../../comm/wire-stats";
import { addWireStats } from "../../comm/wire-stats-merge";
import { createCheckpointApi, type CheckpointInfo, type CheckpointOptions } from "../../checkpoint/dist-checkpoint";
import { isTensor } from "./cell-value";
import { splitEvenly } from "../split";
import { registeredTensorAllReduce } from "./tensor-allreduce";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;

/** What a collective accepts and, in kind, returns. */
export type Collectable = CommArray | Tensor | number | number[];

export interface DistIdentity {
  /** Global rank of this rank in the world group. */
  rank: number;
  size: number;
  /** Rank among the ranks of this host (equals rank for thread groups). */
  localRank: number;
  host: string;
  /** e.g. "cpu:wasm" */
  device: string;
}

/** dist.mesh's answer: the comm mesh with each axis as a Dist. */
export interface DistMesh {
  readonly shape: readonly number[];
  readonly names: readonly string[];
  /** this rank's coordinate along each axis */
  readonly coords: Readonly<Record<string, number>>;
  axis(name: string): Dist;
}

export interface Dist extends DistIdentity {
  barrier(): Promise<void>;
  allReduce<T extends Collectable>(x: T, options?: AllReduceOptions): Promise<T>;
  reduceScatter<T extends Collectable>(x: T, options?: AllReduceOptions): Promise<T>;
  /** Every rank's x concatenated in rank order (tensors along axis 0). */
  allGather<T extends Collectable>(x: T, options?: CollectiveOptions): Promise<T>;
  broadcast<T extends Collectable>(x: T, root: number, options?: CollectiveOptions): Promise<T>;
  send(x: Collectable, peer: number): Promise<void>;
  /** Receives into a buffer shaped like `like` (its length must match what the peer sent). */
  recv<T extends Collectable>(like: T, peer: number): Promise<T>;
  /** This rank's block of `data`: an even split, the first (length % size) ranks get one more. */
  shard<T>(data: readonly T[]): T[];
  /** A sub-group over some ranks of this one; every member must call it in the same order. */
  newGroup(ranks: readonly number[], name?: string): Dist;
  /**
   * A device mesh over this group's ranks, row-major: `dist.mesh([2, 2, 2], ["dp", "pp", "tp"])`;
   * `axis(name)` is the Dist of the ranks that differ from this one only along that axis
   * (its group is named after the axis, e.g. "tp[0,1]"). Every member must call it in the same order.
   */
  mesh(shape: readonly number[], names: readonly string[]): DistMesh;
  /**
   * A zeroed array that collectives read and write in place (thread ranks: it lives in the
   * group's shared memory, so allReduce skips its copies in and out); a plain array elsewhere.
   * `dist.alloc(Float32Array, n)`.
   */
  alloc: Communicator["alloc"];
  /** Gives an array from dist.alloc back for reuse by a later alloc of the same size. */
  free(array: CommArray): void;
  /**
   * Runs `fn` inside a timeline span (category `compute` unless `options.cat`)
   * and returns what it returns; an async `fn` is timed until it settles.
   */
  span<T>(name: string, fn: () => T, options?: SpanOptions): T;
  /**
   * Runs training step `n` (an integer >= 0) inside a step marker: a "step n" span on the
   * rank's `steps` row. Exports turn it into `ProfilerStep#n`, the step annotation that
   * Holistic Trace Analysis groups a trace by. Returns what `fn` returns; async is awaited.
   */
  step<T>(n: number, fn: () => T): T;
  /**
   * Saves `state` atomically with a checksum (every rank calls it): `{ shards: "rank0" }` stores
   * rank 0's state for all ranks, `{ shards: "per-rank" }` each rank's own. See checkpoint/dist-checkpoint.ts.
   */
  checkpoint(path: string, state: unknown, options: CheckpointOptions): Promise<CheckpointInfo>;
  /** The state of the last complete checkpoint at `path` (every rank calls it); tensors come back as tensors. */
  restore<T = unknown>(path: string): Promise<T>;
  /** The underlying communicator, for calls this wrapper does not cover. */
  readonly comm: Communicator;
  /**
   * What this rank's transport moved (payload bytes and messages, per op and per peer), as a
   * snapshot; all zeros before the rank communicates. `dist.stats.reset()` zeroes this rank's
   * counts. Sub-groups share the rank's counts; they survive the world being rebuilt. What the
   * rank's communication thread moved (as of its last finished job) is included.
   */
  readonly stats: WireStatsAccess;
  /**
   * The rank's communication thread: collectives handed to it run while this thread computes,
   * drawn on the rank's `comm` stream. Thread ranks and local process ranks have one; ranks on
   * remote hosts do not (undefined).
   */
  readonly commThread: CommThread | undefined;
}

export interface WireStatsAccess {
  (): WireStats;
  reset(): void;
}

const REDUCE_OPS: readonly ReduceOp[] = ["sum", "mean", "max", "min", "product"];

/** `recorder` receives `dist.span`; collectives record themselves through the communicator's onSpan hook. */
/**
 * `communicator` may be a getter: the rank's world is rebuilt after a cancel, timeout or respawn,
 * and functions declared in earlier cells keep the `dist` they closed over, so the rank's `dist`
 * stays one object whose calls go to the communicator of the current world.
 */
export function createDist(
  identity: DistIdentity,
  communicator: Communicator | (() => Communicator),
  tf: Tf,
  recorder?: SpanRecorder,
  wire?: WireCounters,
  commThread: () => CommThread | undefined = () => undefined,
): Dist {
  const current = typeof communicator === "function" ? communicator : () => communicator;
  // The rank's counters when given (they outlive any one world), else the communicator's.
  const ownStats = (): WireStats => (wire ? wire.snapshot() : current().stats());
  const stats: WireStatsAccess = Object.assign(
    () => {
      const threadStats = commThread()?.wireStats();
      return threadStats ? addWireStats(ownStats(), threadStats) : ownStats();
    },
    {
      reset: () => {
        if (wire) wire.reset();
        else current().resetStats();
        commThread()?.resetWireStats();
      },
    },
  );
  /**
   * `run` gets the array and, for a tensor, its shape: collectives pass it on (CollectiveOptions.shape)
   * so that ranks holding [2, 3] and [3, 2] tensors of the same length fail instead of mixing them.
   */
  const viaArray = <T extends Collectable>(
    where: string, x: T, run: (array: CommArray, shape?: readonly number[]) => Promise<CommArray>, gathered = false,
  ): Promise<T> => {
    // A typed array, the common case, goes straight through: no async step of its own, whose
    // promises a rank inside a cell pays its cell-epoch hooks for (rank-side/cell-epochs.ts).
    if (ArrayBuffer.isView(x) && !isTensor(x)) {
      try {
        return run(x as CommArray) as Promise<T>;
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return viaOtherKinds(where, x, run, gathered);
  };
  const viaOtherKinds = async <T extends Collectable>(
    where: string, x: T, run: (array: CommArray, shape?: readonly number[]) => Promise<CommArray>, gathered: boolean,
  ): Promise<T> => {
    if (typeof x === "number") {
      const out = await run(Float64Array.of(x));
      return (gathered ? Array.from(out) : out[0]) as T;
    }
    if (Array.isArray(x)) return Array.from(await run(Float64Array.from(x as number[]))) as T;
    if (isTensor(x)) {
      const tensor = x as Tensor;
      // Read without blocking: a GPU rank (webgpu) cannot read a GPU tensor synchronously. The values
      // may be the backend's own cached buffer. Collectives only read their input; recv writes into it,
      // so it gets a copy.
      const synced = (await tensor.data()) as CommArray;
      const data = where === "recv" ? synced.slice() : synced;
      const out = await run(data, tensor.shape);
      const shape = gathered ? gatheredShape(tensor.shape, out.length) : out.length === data.length ? tensor.shape : [out.length];
      return tf.tensor(out, shape, tensor.dtype) as unknown as T;
    }
    throw new TypeError(`dist.${where}: expected a typed array, tf.Tensor, number or number[], got ${describeKind(x)}`);
  };
  const checkOp = (where: string, options?: AllReduceOptions): void => {
    if (options?.op !== undefined && !REDUCE_OPS.includes(options.op)) {
      throw new RangeError(`dist.${where}: op must be one of ${REDUCE_OPS.join("|")}, got '${String(options.op)}'`);
    }
  };
  const checkPeer = (where: string, name: string, peer: number): void => {
    if (!Number.isInteger(peer) || peer < 0 || peer >= current().size) {
      throw new RangeError(`dist.${where}: ${name} must be a rank in 0..${current().size - 1}, got ${String(peer)}`);
    }
  };
  let stepOpen = false;
  const dist: Dist = {
    ...identity,
    get rank() {
      return current().rank;
    },
    get size() {
      return current().size;
    },
    get comm() {
      return current();
    },
    get commThread() {
      return commThread();
    },
    stats,
    barrier: () => current().barrier(),
    allReduce: (x, options) => {
      try {
        checkOp("allReduce", options);
      } catch (error) {
        return Promise.reject(error);
      }
      const viaArrays = () => viaArray("allReduce", x, (array, shape) => current().allReduce(array, withShape(options, shape)));
      if (!isTensor(x)) return viaArrays();
      const tensor = x as unknown as Tensor;
      return registeredTensorAllReduce(tf, current(), tensor, withShape(options, tensor.shape) ?? {}).then((reduced) =>
        reduced ? (reduced as unknown as typeof x) : viaArrays(),
      );
    },
    reduceScatter: (x, options) => {
      checkOp("reduceScatter", options);
      return viaArray("reduceScatter", x, (array, shape) => current().reduceScatter(array, withShape(options, shape)));
    },
    allGather: (x, options) => viaArray("allGather", x, (array, shape) => current().allGather(array, withShape(options, shape)), true),
    broadcast: (x, root, options) => {
      checkPeer("broadcast", "root", root);
      return viaArray("broadcast", x, (array, shape) => current().broadcast(array, root, withShape(options, shape)));
    },
    send: async (x, peer) => {
      checkPeer("send", "peer", peer);
      await viaArray("send", x, async (array) => {
        await current().send(array, peer);
        return array;
      });
    },
    recv: (like, peer) => {
      checkPeer("recv", "peer", peer);
      return viaArray("recv", like, (array) => current().recv(array, peer));
    },
    span: (name, fn, options) => {
      checkSpan(name, fn, options);
      return recorder ? recorder.span(name, fn, options) : fn();
    },
    step: (n, fn) => {
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`dist.step: n must be an integer >= 0, got ${String(n)}`);
      checkSpan(`step ${n}`, fn, undefined, "dist.step");
      // A step inside a step (a technique's step called from the user's marked loop) adds no
      // marker: the outer one already bounds it, and HTA reads one step at a time.
      if (!recorder || stepOpen) return fn();
      stepOpen = true;
      let result: ReturnType<typeof fn>;
      try {
        result = recorder.span(`step ${n}`, fn, { cat: "other", args: { step: n, stream: STEP_STREAM } });
      } catch (error) {
        stepOpen = false;
        throw error;
      }
      if (result instanceof Promise) return result.finally(() => (stepOpen = false)) as typeof result;
      stepOpen = false;
      return result;
    },
    shard: (data) => {
      const { start, end } = splitEvenly(data.length, current().size)[current().rank]!;
      return data.slice(start, end);
    },
    ...createCheckpointApi(current, () => tf),
    alloc: (dtype, length) => current().alloc(dtype, length),
    free: (array) => current().free(array),
    newGroup: (ranks, name) => {
      const sub = current().newGroup(ranks, name);
      // The comm thread serves the world group only.
      return createDist({ ...identity, rank: sub.rank, size: sub.size }, sub, tf, recorder, wire);
    },
    mesh: (shape, names) => {
      const mesh = current().mesh(shape, names);
      const axes = new Map<string, Dist>();
      return {
        shape: mesh.shape, names: mesh.names, coords: mesh.coords,
        axis: (name) => {
          if (!axes.has(name)) {
            const sub = mesh.axis(name);
            axes.set(name, createDist({ ...identity, rank: sub.rank, size: sub.size }, sub, tf, recorder, wire));
          }
          return axes.get(name)!;
        },
      };
    },
  };
  return dist;
}

/** The options with a tensor's shape for the ranks to agree on (unchanged for a plain array). */
function withShape<O extends CollectiveOptions>(options: O | undefined, shape: readonly number[] | undefined): O | undefined {
  return shape ? ({ ...options, shape } as O) : options;
}

/** allGather of a tensor concatenates along axis 0: [a, ...rest] -> [size * a, ...rest]; scalars -> [size]. */
function gatheredShape(shape: readonly number[], total: number): number[] {
  if (shape.length === 0) return [total];
  const rest = shape.slice(1).reduce((product, dim) => product * dim, 1);
  return [rest === 0 ? 0 : total / rest, ...shape.slice(1)];
}

function checkSpan(name: unknown, fn: unknown, options?: SpanOptions, where = "dist.span"): void {
  if (typeof name !== "string") throw new TypeError(`${where}: name must be a string, got ${describeKind(name)}`);
  if (typeof fn !== "function") throw new TypeError(`${where}: fn must be a function, got ${describeKind(fn)}`);
  if (options?.cat !== undefined && !isSpanCategory(options.cat)) {
    throw new RangeError(`dist.span: cat must be one of ${SPAN_CATEGORIES.join("|")}, got '${String(options.cat)}'`);
  }
}

function describeKind(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "object";
  return typeof x;
}
