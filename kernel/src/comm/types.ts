// The public shapes of distlab's collective communication layer: one
// Communicator interface for every transport (shm between threads, tcp
// between processes and hosts).
import type { WireCounters } from "./wire-counters";
import type { WireStats } from "./wire-stats";

/** Typed arrays a collective accepts; the result has the input's type. */
export type CommArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export type ReduceOp = "sum" | "mean" | "max" | "min" | "product";

/**
 * `ring`: bandwidth-bound, 2(n-1)/n of the data over each link, 2(n-1) steps.
 * `recursive-doubling`: latency-bound, log2(n) rounds of the whole vector
 * (for broadcast: a binomial tree).
 * `rhd`: recursive halving-doubling, log2(n) rounds each way carrying the
 * ring's volume (allReduce any n; reduceScatter/allGather power-of-two n).
 * `direct`: shm world only; ranks read each other's shared staging slots in
 * place (same-host fast path, see docs/collectives.md).
 * `pairwise` (allReduce): every rank sends block j straight to rank j, which
 * reduces it and sends it back to all: the ring's volume in 2 steps.
 * Left out, the communicator picks by transport and message size.
 */
export type Algorithm = "ring" | "recursive-doubling" | "rhd" | "direct" | "pairwise";

/** An emulated link: transfer time = latency + bytes / bandwidth, per message and direction. */
export interface LinkModel {
  /** bytes per second */
  bandwidth: number;
  /** seconds */
  latency: number;
}

export interface CollectiveOptions {
  algorithm?: Algorithm;
  /**
   * Write the result here instead of a fresh array (allReduce, reduceScatter,
   * allGather, broadcast): same dtype, the result's length; may be the input
   * itself for allReduce and broadcast (in place, as PyTorch's collectives are).
   */
  out?: CommArray;
  /** Emulated link for this call; overrides the world's. */
  link?: LinkModel;
  /**
   * The shape of the tensor the array holds (dist passes a tf.Tensor's shape): every rank's
   * call must then give the same shape, or the call fails with a CommMismatchError.
   */
  shape?: readonly number[];
}

export interface AllReduceOptions extends CollectiveOptions {
  op?: ReduceOp;
}

/** One record per collective or point-to-point call, for the timeline. */
export interface CommSpan {
  /** e.g. "allReduce", "send" */
  op: string;
  /** payload bytes of this rank's input (send: bytes sent) */
  bytes: number;
  algorithm: Algorithm | "p2p";
  /** world rank of the peer for point-to-point calls */
  peer?: number;
  /** group name ("world" or the one given to newGroup/mesh) */
  group: string;
  /** 1-based call number within the group */
  call: number;
  /** microseconds since the Unix epoch (performance.timeOrigin + performance.now()) */
  start: number;
  end: number;
  /**
   * What this call moved on the wire, as the transport counted it (wire-stats.ts). Direct-path
   * calls (shm): peers read this rank's memory in place, so bytesSent/messagesSent are what they had
   * read by the time this rank left the call; dist.stats() has the rest once every rank is past it.
   */
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
}

export interface SpanHook {
  (span: CommSpan): void;
  /** false while nobody records (a cell run with `--timeline off`): calls then read no clock and report nothing */
  readonly recording?: boolean;
}

export interface Communicator {
  /** rank within this communicator (group) */
  readonly rank: number;
  readonly size: number;
  /** world ranks of this communicator's members, indexed by group rank */
  readonly worldRanks: readonly number[];
  readonly name: string;

  /** What this rank's transport has moved since it started or since resetStats (world and groups share the counts). */
  stats(): WireStats;
  /** Zeroes this rank's wire counters. */
  resetStats(): void;

  /**
   * A zeroed array of `length` elements for this rank's collectives. In a shm world it lives in
   * the world's shared memory (registered memory): collectives read it in place, with no copy
   * into staging memory, and write results straight into it. Elsewhere it is a plain array.
   */
  alloc<T extends CommArray>(ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number; readonly name: string }, length: number): T;
  /** Returns an array from alloc() for reuse by a later alloc() of the same size (no-op outside a shm world). */
  free(array: CommArray): void;

  send(x: CommArray, peer: number): Promise<void>;
  /** Receives into `into` (its length must match the sender's). */
  recv<T extends CommArray>(into: T, peer: number): Promise<T>;
  isend(x: CommArray, peer: number): Promise<void>;
  irecv<T extends CommArray>(into: T, peer: number): Promise<T>;

  allReduce<T extends CommArray>(x: T, options?: AllReduceOptions): Promise<T>;
  /** The reduced array on `root`; an empty array of the same type elsewhere. */
  reduce<T extends CommArray>(x: T, root: number, options?: AllReduceOptions): Promise<T>;
  /** Block `rank` of the reduced array; blocks are [floor(i*len/size), floor((i+1)*len/size)). */
  reduceScatter<T extends CommArray>(x: T, options?: AllReduceOptions): Promise<T>;
  /** Every rank's x (all of equal length), concatenated in rank order. */
  allGather<T extends CommArray>(x: T, options?: CollectiveOptions): Promise<T>;
  /** root's x on every rank; x elsewhere gives the dtype and length. */
  broadcast<T extends CommArray>(x: T, root: number, options?: CollectiveOptions): Promise<T>;
  /** Concatenation on root; an empty array elsewhere. */
  gather<T extends CommArray>(x: T, root: number, options?: CollectiveOptions): Promise<T>;
  /** Block `rank` of root's x (blocks as in reduceScatter); x elsewhere only gives the dtype. */
  scatter<T extends CommArray>(x: T, root: number, options?: CollectiveOptions): Promise<T>;
  /** x cut into `size` blocks; block j goes to rank j; the result concatenates what each rank sent here. */
  allToAll<T extends CommArray>(x: T, options?: CollectiveOptions): Promise<T>;
  /** Waits until every rank is here, and every check of this rank's earlier calls has passed (settle). */
  barrier(): Promise<void>;
  /**
   * Resolves once every check of the calls this rank has made so far has passed; rejects with the
   * first that failed. Socket worlds check a one-way collective's agreement frames up to 32 calls
   * late (docs/collectives.md); a cell settles when its code ends, so its errors are its own.
   */
  settle(): Promise<void>;

  /** A communicator over a subset of this one's ranks (group ranks); every member must call it in the same order. */
  newGroup(ranks: readonly number[], name?: string): Communicator;
  /** Sub-communicators along each axis of a mesh over this communicator's ranks (row-major). */
  mesh(shape: readonly number[], names: readonly string[]): DeviceMesh;
}

export interface DeviceMesh {
  readonly shape: readonly number[];
  readonly names: readonly string[];
  /** this rank's coordinate along each axis */
  readonly coords: Readonly<Record<string, number>>;
  /** the communicator of ranks that differ from this one only along `axis` */
  axis(name: string): Communicator;
}

export interface CommOptions {
  /** A wait longer than this rejects naming the op, call number and ranks waited for. milliseconds, default 60000 */
  timeoutMs?: number;
  /** Called once per call, synchronously, after it ends; absent means no timing work at all. */
  onSpan?: SpanHook;
  /** Default emulated link for every call. */
  link?: LinkModel;
  /** Where the transport counts what it moves; pass one to keep the counts across worlds. Default: fresh counters. */
  wire?: WireCounters;
  /**
   * shm and tcp worlds: the pool of shared memory blocks that collectives without `out` return their
   * results in (result-pool.ts, docs/collectives.md), in bytes: results below `minBytes` are plain
   * arrays; the rank's pool holds at most `budgetBytes`; results of `collectFromBytes` or more may
   * force a full garbage collection to get a dropped result's block back.
   */
  resultPool?: { minBytes?: number; budgetBytes?: number; collectFromBytes?: number };
  /**
   * The epoch (cell id, > 0) a call being made now belongs to; called once per call with the
   * call's name ("allReduce", "send", ...). Throws to refuse the call (it comes from a cell that
   * has ended). Transports drop frames of an older epoch and end waits an older epoch left.
   * Absent: every call is epoch 0.
   */
  epoch?: (call: string) => number;
}
