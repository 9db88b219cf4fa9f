// State shared by a rank's world communicator and all its groups: the queue
// that runs their calls in program order, group ids, and the memory the
// channel algorithms and direct collectives work in (accumulators, the
// combine arena, work arrays, and where results go).
import type { Combining } from "./algorithms";
import { allocate } from "./dtype";
import { checkLink } from "./link";
import type { Reducer } from "./reduce-js";
import { PLAIN_MEMORY, type RegisteredMemory, type TypedArrayConstructor } from "./registered-memory";
import type { ResultPool } from "./result-pool";
import { addressSum, peerMemoryOps } from "./peer-memory";
import type { DirectCollectives } from "./shm-direct";
import type { CallContext, Transport } from "./transport";
import type { CollectiveOptions, CommArray, CommOptions, LinkModel, SpanHook } from "./types";
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

  /** A copy of x to reduce into: in the WebAssembly arena with its SIMD reducer (and landing memory) when there is one. */
  accumulator(x: CommArray, call: CallContext, reduce: Reducer): { acc: CommArray; reduce: Reducer; landing?: Combining["landing"] } {
    const arena = this.arena();
    if (!arena) return { acc: x.slice(), reduce };
    const { dtype, redop } = call.desc;
    const acc = arena.view(dtype, x.length, x.BYTES_PER_ELEMENT);
    acc.set(x as never);
    return { acc, reduce: arena.reducer(redop, dtype, x.BYTES_PER_ELEMENT), landing: (bytes) => arena.landing(bytes) };
  }

  /** How the ring folds arriving pieces into arrays anywhere: SIMD in the rank's combine arena, or the plain loops. */
  combining(x: CommArray, call: CallContext, reduce: Reducer): Combining {
    const arena = this.combineArena();
    if (!arena) {
      return {
        combine(dst, a, piece) {
          if (dst.buffer !== a.buffer || dst.byteOffset !== a.byteOffset) dst.set(a as never);
          reduce(dst, piece);
        },
      };
    }
    const { dtype, redop } = call.desc;
    // float sums and means: the addon adds where the arrays are, with no copy into the arena and out
    const ops = dtype <= 1 && redop <= 1 ? peerMemoryOps() : undefined;
    const combine = ops ? addressSum(ops, dtype) : arena.combiner(redop, dtype, x.BYTES_PER_ELEMENT);
    return { combine, landing: (bytes) => arena.landing(bytes) };
  }

  /**
   * A fresh result array like x of `length` elements, allocated here, or undefined when the world's
   * result pool serves it (a result of at least the pool's minBytes: pooledOutput).
   * Synchronous, so a small call awaits nothing for its result: each promise costs twice over under
   * a cell's AsyncLocalStorage (countdown.ts).
   */
  private allocatedOutput<T extends CommArray>(x: T, length: number): T | undefined {
    const pooled = this.results?.serves(length * x.BYTES_PER_ELEMENT);
    return pooled ? undefined : allocate(x, length);
  }

  /**
   * Runs `body` on the call's output: `given`, or a new array, or one from the pool (which may wait).
   * Synchronous when the output is at hand and `body` is (a direct collective into a small result):
   * no promise of its own, since a rank in a cell pays its cell-epoch hooks for every promise.
   */
  intoOutput<T extends CommArray>(x: T, length: number, given: T | undefined, body: (out: T) => T | Promise<T>): T | Promise<T> {
    this.results?.noteCall();
    const out = given ?? this.allocatedOutput(x, length);
    return out !== undefined ? body(out) : this.pooledOutput(x, length).then(body);
  }

  /** A result array from the pool (it may wait for a collection or a spare block), or allocated when it has none. */
  private async pooledOutput<T extends CommArray>(x: T, length: number): Promise<T> {
    return (await this.results!.take(x.constructor as TypedArrayConstructor<T>, length)) || allocate(x, length);
  }

  /** options.out when given (checked here, synchronously), else undefined; errors name `${name}.${op}`. */
  givenOutput<T extends CommArray>(name: string, x: T, length: number, options: CollectiveOptions, op: string): T | undefined {
    const out = options.out;
    if (out === undefined) return undefined;
    if (out.constructor !== x.constructor) {
      throw new TypeError(`${name}.${op}: out must be a ${x.constructor.name} like the input, got ${out.constructor.name}`);
    }
    if (out.length !== length) throw new RangeError(`${name}.${op}: out must have ${length} elements, got ${out.length}`);
    return out as T;
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
