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
  /** calls handed to serialize that have not settled */
  private inFlight = 0;
  private nextGroupId = 1;
  /** the shm world's same-host paths (world communicator only) */
  direct?: DirectCollectives;
  /** what alloc hands out: the shm world's registered memory, plain arrays elsewhere */
  memory: RegisteredMemory = PLAIN_MEMORY;
  /** where direct collectives called without `out` put their results (shm world) */
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

  /** A work array like x of `length` elements in memory reused from call to call (calls run one at a time). */
  workspace<T extends CommArray>(x: T, length: number): T {
    const bytes = length * x.BYTES_PER_ELEMENT;
    if (this.workspaceMemo.byteLength < bytes) this.workspaceMemo = new ArrayBuffer(bytes);
    return new (x.constructor as new (buffer: ArrayBuffer, offset: number, length: number) => T)(this.workspaceMemo, 0, length);
  }

  allocateGroupId(): number {
    return this.nextGroupId++;
  }

  /**
   * Runs calls one after another in program order. A call made while none is in flight starts at
   * once rather than a microtask later: each promise costs a rank inside a cell its cell-epoch
   * promise hooks (rank-side/cell-epochs.ts), and most calls find the queue empty.
   */
  serialize<T>(run: () => Promise<T>): Promise<T> {
    let result: Promise<T>;
    if (this.inFlight > 0) result = this.queue.then(run);
    else {
      try {
        result = run();
      } catch (error) {
        result = Promise.reject(error);
      }
    }
    this.inFlight += 1;
    this.queue = result.then(this.callSettled, this.callSettled);
    return result;
  }

  private readonly callSettled = (): void => {
    this.inFlight -= 1;
  };
}
