// Where the results of direct (shm) collectives called without `out` live:
// blocks of shared memory that the pool keeps for the world's life, handed
// out as the returned arrays and taken back when the caller drops them.
//
// Why: a fresh 64 MiB array costs more than the collective itself. Its pages
// are new to the process and the first write to each 4 KiB page faults, and
// V8 answers every such array's external memory with collections (figures:
// docs/collectives.md, "Figures behind the code").
// A reused block's pages are touched already; the direct allReduce copies the
// reduced result into it by memmove (host-copy.ts).
//
// Lifetime: each block is a SharedArrayBuffer. The pool keeps one JS object of
// it; the caller gets a view over a second JS object of the same memory
// (structuredClone of a SharedArrayBuffer shares it). Every view the caller
// makes (subarray, new Float32Array(result.buffer)) holds that second object,
// so the block returns only once the garbage collector finds no view of it
// left (a FinalizationRegistry on the second object): the returned array is
// the caller's to keep and change for as long as it wants, with no aliasing.
// The one way around it: posting the result (or its buffer) to another
// thread shares the memory instead of copying it; post `result.slice()`.
//
// When blocks come back: V8 runs finalizers only after a full collection and
// only between tasks, while a loop of awaited collectives is one task. A
// forced collection is a pause of the whole rank heap (tens to hundreds of
// ms in a kernel rank with TensorFlow.js loaded), so no call forces one while
// the pool can still claim a block: taking a block (1) yields one task when
// no block of the size is idle, so finalizers that are due run; (2) claims a
// new block while the pool is under `budgetBytes` (letting go of idle blocks
// of other sizes to make room); (3) only then, for results of
// `collectFromBytes` or more, forces one full collection (full-gc.ts). After a
// collection that brings nothing back (the caller keeps its results), the
// next waits until as many results as the pool has blocks were taken, or a
// block came back by itself.
// What brings blocks back without a forced collection is V8's own, which
// marks concurrently on helper threads and pauses the rank only briefly. V8
// starts one when external memory grows, but it counts no shared memory
// (a SharedArrayBuffer's bytes are not per-isolate), so a loop that drops its
// results would give it no reason to: each handed-out result carries ballast,
// a plain ArrayBuffer of the block's size that nothing touches (calloc maps
// it and no page of it is ever faulted in), which V8 counts and frees with
// the result. So V8 sees the bytes the caller's results hold and collects in
// step with them, and a loop that drops its results runs on the few blocks
// one of its collection cycles needs.
// A new block's pages fault on their first write, which costs several times
// the copy into it: a take (of `collectFromBytes` or more) that leaves no
// block of its size idle claims a spare, whose pages a helper thread
// touches (page-toucher.ts) while the rank goes on; the next call that finds
// no idle block takes the spare, its pages in place, or waits for the touch
// to end (sooner than faulting in a block of its own).
// And 200 ms after the last large take (the end of a loop, of a cell) the
// pool collects once, while the rank is idle, so the next loop starts with
// its blocks back.
// When all of this finds no block, and for results below `minBytes`, the
// result is a plain fresh array.
import type { TypedArrayConstructor } from "./registered-memory";
import type { CommArray } from "./types";

export interface ResultPoolOptions {
  /** results of fewer bytes are plain fresh arrays (their pages come from malloc's own reused memory) */
  minBytes: number;
  /** most bytes of blocks one rank's pool may hold */
  budgetBytes: number;
  /** results of at least this many bytes may force a full collection to get a block back */
  collectFromBytes: number;
}

export interface ResultPoolHooks {
  /** a full, synchronous garbage collection (full-gc.ts), if the host has one */
  collect?: () => void;
  /** resolves in a later task, after finalizers that are due have run */
  nextTask?: () => Promise<void>;
  /** false: results carry no ballast (the header says why they do) */
  ballast?: boolean;
  /** resolves once the block's pages are faulted in, by another thread (page-toucher.ts) */
  prefault?: (block: SharedArrayBuffer) => Promise<void>;
}

/** How long a rank's pool waits after its last large take before collecting, milliseconds. */
const IDLE_COLLECT_MS = 200;

/** Blocks are whole 64-byte lines. */
const LINE = 64;

export class ResultPool {
  /** block bytes -> the pool's own objects of idle blocks */
  private readonly idle = new Map<number, SharedArrayBuffer[]>();
  /** full-pool takes left before the next forced collection: after one that brought nothing back, as many as the pool has blocks */
  private skipCollections = 0;
  private blocks = 0;
  private pooledBytes = 0;
  private readonly registry = new FinalizationRegistry<SharedArrayBuffer>((kept) => this.returned(kept));
  private readonly nextTask: () => Promise<void>;
  private idleTimer?: ReturnType<typeof setTimeout>;
  /** inside take's yield to the event loop (a call is under way) */
  private taking = false;
  /** block bytes -> the touch of its spare under way (warmSpare), resolved once the spare is idle */
  private readonly warming = new Map<number, Promise<void>>();

  constructor(
    private readonly options: ResultPoolOptions,
    private readonly hooks: ResultPoolHooks = {},
  ) {
    this.nextTask = hooks.nextTask ?? (() => new Promise<void>((resolve) => setImmediate(resolve)));
  }

  /** Whether take() would look for a block for a result of `bytes` (else it returns undefined at once). */
  serves(bytes: number): boolean {
    return bytes > 0 && bytes >= this.options.minBytes;
  }

  /** A `length`-element array over a pooled block (contents undefined), or undefined: then the caller allocates a plain one. */
  async take<T extends CommArray>(ctor: TypedArrayConstructor<T>, length: number): Promise<T | undefined> {
    const bytes = length * ctor.BYTES_PER_ELEMENT;
    if (!this.serves(bytes)) return undefined;
    const size = Math.ceil(bytes / LINE) * LINE;
    let kept = this.idleBlock(size);
    if (!kept) {
      // the one place a loop of calls yields to the event loop: an idle collection due now must wait
      this.taking = true;
      try {
        await this.nextTask();
      } finally {
        this.taking = false;
      }
      kept = this.idleBlock(size);
    }
    // a spare being touched is ready no later than a new block this thread would fault in itself
    const warming = kept ? undefined : this.warming.get(size);
    if (warming) {
      await warming;
      kept = this.idleBlock(size);
    }
    // fresh memory before a forced collection: the collection pauses the rank, V8's own does not
    kept ??= this.claim(size);
    if (!kept && this.worthCollecting(size)) {
      this.hooks.collect!();
      await this.nextTask();
      // blocks of other sizes that came back are let go to make room
      kept = this.idleBlock(size) ?? this.claim(size);
      if (!kept) this.skipCollections = this.blocks;
    }
    if (!kept) return undefined;
    // none of the size left idle: the next call that finds none should not fault in a new block itself
    if (!this.idle.get(size)?.length) this.warmSpare(size);
    const handed = structuredClone(kept);
    this.registry.register(handed, kept);
    this.carryBallast(handed, size);
    if (size >= this.options.collectFromBytes) this.collectWhenIdle();
    return new ctor(handed, 0, length);
  }

  /**
   * Claims one more block of `size` and has the page toucher fault in its pages off this thread; it
   * joins the idle blocks once touched (until then it is nobody's). One spare of a size at a time.
   */
  private warmSpare(size: number): void {
    const touch = this.hooks.prefault;
    if (!touch || size < this.options.collectFromBytes || this.warming.has(size)) return;
    const spare = this.claim(size);
    if (!spare) return;
    this.warming.set(size, touch(spare).then(() => {
      this.warming.delete(size);
      this.returned(spare);
    }));
  }

  /** Ballast by handed-out result (the WeakMap entry lives exactly as long as the result's buffer). */
  private readonly ballast = new WeakMap<SharedArrayBuffer, ArrayBuffer>();

  /** Makes V8 count `bytes` of external memory for as long as `handed` lives (see the header). */
  private carryBallast(handed: SharedArrayBuffer, bytes: number): void {
    if (this.hooks.ballast === false) return;
    try {
      this.ballast.set(handed, new ArrayBuffer(bytes));
    } catch {
      // no address space for it: the result is still valid, V8 only learns less about it
    }
  }

  /** Blocks the pool owns (idle, out, and spares being touched) and their bytes: for tests and diagnostics. */
  stats(): { blocks: number; idle: number; out: number; bytes: number } {
    let idle = 0;
    for (const list of this.idle.values()) idle += list.length;
    return { blocks: this.blocks, idle, out: this.blocks - idle - this.warming.size, bytes: this.pooledBytes };
  }

  /**
   * A full collection once no block was taken for IDLE_COLLECT_MS (re-armed by every take): a loop
   * of calls never waits for it, and at the end of the loop (a cell) the blocks its dropped results
   * hold are back before the next one starts.
   */
  private collectWhenIdle(): void {
    const collect = this.hooks.collect;
    if (!collect) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      // a call that ran longer than IDLE_COLLECT_MS lets the timer fire in the next call's take:
      // that rank is not idle, and a forced collection there would pause the call
      if (this.taking) this.collectWhenIdle();
      else collect();
    }, IDLE_COLLECT_MS);
    this.idleTimer.unref?.();
  }

  private idleBlock(size: number): SharedArrayBuffer | undefined {
    return this.idle.get(size)?.pop();
  }

  /** The pool is full and blocks are out: some may have been dropped since the last collection. */
  private worthCollecting(size: number): boolean {
    if (this.hooks.collect === undefined || size < this.options.collectFromBytes || this.stats().out === 0) return false;
    if (this.skipCollections > 0) {
      this.skipCollections--;
      return false;
    }
    return true;
  }

  private claim(size: number): SharedArrayBuffer | undefined {
    if (size > this.options.budgetBytes) return undefined;
    this.evictIdle(this.pooledBytes + size - this.options.budgetBytes);
    if (this.pooledBytes + size > this.options.budgetBytes) return undefined;
    let block: SharedArrayBuffer;
    try {
      block = new SharedArrayBuffer(size);
    } catch {
      return undefined; // the host could not allocate it: a plain array (or its error) will tell
    }
    this.blocks++;
    this.pooledBytes += size;
    return block;
  }

  /** Lets go of idle blocks (of other sizes: this size has none idle) until `bytes` are freed or none is left; the collector frees their memory. */
  private evictIdle(bytes: number): void {
    for (const [size, list] of this.idle) {
      while (bytes > 0 && list.pop()) {
        bytes -= size;
        this.blocks--;
        this.pooledBytes -= size;
      }
      if (list.length === 0) this.idle.delete(size);
      if (bytes <= 0) return;
    }
  }

  private returned(kept: SharedArrayBuffer): void {
    const size = kept.byteLength;
    this.skipCollections = 0;
    const list = this.idle.get(size);
    if (list) list.push(kept);
    else this.idle.set(size, [kept]);
  }
}
