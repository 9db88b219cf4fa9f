// State shared by a rank's world communicator and all its groups: the queue
// that runs their calls in program order, group ids, and the memory the
// channel algorithms and direct collectives work in.
import { checkLink } from "./link";
import { PLAIN_MEMORY, type RegisteredMemory } from "./registered-memory";
import type { ResultPool } from "./result-pool";
import type { DirectCollectives } from "./shm-direct";
import type { Transport } from "./transport";
import type { CommArray, CommOptions, LinkModel, SpanHook } from "./types";
import { WasmArena } from "./wasm-arena";
import { CombineArena } from "./wasm-combine";

/** State shared by a rank's world communicator and all its groups. */
export class CommCore {
  readonly timeoutMs: number;
  readonly onSpan?: SpanHook;
  readonly link?: LinkModel;
  /** CommOptions.epoch: the epoch of a call made now (throws to refuse it) */
  readonly epochOf?: (call: string) => number;
  private queue: Promise<unknown> = Promise.resolve();
  private nextGroupId = 1;
  /** the shm world's same-host paths (world communicator only) */
  direct?: DirectCollectives;
  /** what alloc hands out: the shm world's registered memory, plain arrays elsewhere */
  memory: RegisteredMemory = PLAIN_MEMORY;
  /** where collectives called without `out` put their results (result-pool.ts; shm and tcp worlds) */
  results?: ResultPool;
  private arenaMemo?: WasmArena | null;
  private combineMemo?: CombineArena | null;
  private workspaceMemo = new ArrayBuffer(0);

  constructor(
    readonly transport: Transport,
    options: CommOptions,
  ) {
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0 milliseconds, got ${options.timeoutMs}`);
    this.timeoutMs = timeoutMs;
    this.onSpan = options.onSpan;
    this.link = options.link && checkLink(options.link, "link");
    this.epochOf = options.epoch;
  }

  /** This rank's WebAssembly accumulator memory (created on first use); undefined without WebAssembly SIMD. */
  arena(): WasmArena | undefined {
    if (this.arenaMemo === undefined) this.arenaMemo = WasmArena.create() ?? null;
    return this.arenaMemo ?? undefined;
  }

  /** This rank's memory for the ring's receive-side reduction (created on first use); undefined without WebAssembly SIMD. */
  combineArena(): CombineArena | undefined {
    if (this.combineMemo === undefined) this.combineMemo = CombineArena.create() ?? null;
    return this.combineMemo ?? undefined;
  }

  /** A work array like x of `length` elements in memory reused from call to call (calls run one at a time): the ring reduceScatter's result, pairwise allReduce's later pieces. */
  workspace<T extends CommArray>(x: T, length: number): T {
    const bytes = length * x.BYTES_PER_ELEMENT;
    if (this.workspaceMemo.byteLength < bytes) this.workspaceMemo = new ArrayBuffer(bytes);
    return new (x.constructor as new (buffer: ArrayBuffer, offset: number, length: number) => T)(this.workspaceMemo, 0, length);
  }

  allocateGroupId(): number {
    return this.nextGroupId++;
  }

  /**
   * Runs calls one after another in program order, each a microtask after the caller's own code:
   * on a shm world a collective blocks its thread until every rank has entered it, so a call
   * started at once would keep the caller from making the sends that come after it in the same
   * synchronous block (rank 0: `p = allReduce(x); send(y, 1)`, rank 1: `recv(y, 0); allReduce(x)`).
   */
  serialize<T>(run: () => T | Promise<T>): Promise<T> {
    // run follows the call before whether that call succeeded or failed: one `then`, no `catch`
    // (each promise costs a rank in a cell its cell-epoch hooks, rank-side/cell-epochs.ts)
    const result = this.queue.then(run, run);
    this.queue = result;
    return result;
  }
}
