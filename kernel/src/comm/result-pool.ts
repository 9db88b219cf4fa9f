// Where the results of direct (shm) collectives called without `out` live:
// blocks of shared memory that the pool keeps for the world's life, handed
// out as the returned arrays and taken back when the caller drops them.
//
// Why: a fresh 64 MiB array costs more than the collective itself. Its pages
// are new to the process and the first write to each 4 KiB page faults, and
// V8 answers every such array's external memory with collections (figures:
// docs/collectives.md, "Figures behind the code").
// A reused block's pages are in place already; the direct allReduce copies the
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
// When blocks come back, with the native finalizers of dropped-results.ts
// (where `npm run setup` built them): a take that finds no idle block of the
// size runs a young-generation scavenge (well under a millisecond), yields
// one task, and takes a block whose result was collected; a claim of a large
// block claims spares with it (sparesFor); a result promoted to the old
// generation (it outlived a collection) needs a full collection, forced once
// three blocks of the size are out and none came back, where that is cheaper
// than a claim.
// Without them, the FinalizationRegistry: V8 runs its callbacks only after a
// full collection and only between tasks, while a loop of awaited
// collectives is one task. So taking a block (1) yields one task when no
// block of the size is idle, so finalizers that are due run; (2) once BLOCKS_BEFORE_COLLECTING blocks of
// the size are out, forces one full collection (full-gc.ts) where a
// collection has cost this rank less than faulting in a new block's pages
// (both timed here, as they happen); (3) claims a new block while the pool
// is under `budgetBytes` (letting go of idle blocks of other sizes to make
// room), its pages faulted in at once; (4) only then, for results of
// `collectFromBytes` or more, forces a collection to get a block back. After
// a collection that brings nothing back (the caller keeps its results), the
// next waits until as many results as the pool has blocks were taken, or a
// block came back by itself.
// Why collect before claiming, where it is cheaper: fresh pages are dear and
// their cost is erratic (on the 2-core build machine 64 MiB took 25-236 ms to
// fault in, a forced collection 5-15 ms in a small rank heap and 15-35 ms
// with TensorFlow.js loaded), and a loop that drops its results then runs on
// four blocks instead of the whole budget. Where collections cost more (a
// large heap), the pool grows toward the budget and relies on V8's own.
// Those bring blocks back without a forced collection: V8 marks concurrently
// on helper threads and pauses the rank only briefly. V8 starts one when
// external memory grows, but it counts no shared memory (a
// SharedArrayBuffer's bytes are not per-isolate), so a loop that drops its
// results would give it no reason to: each handed-out result carries
// ballast, a plain ArrayBuffer of the block's size that nothing touches
// (calloc maps it and no page of it is ever faulted in), which V8 counts and
// frees with the result.
// And 200 ms after the last large take or any later collective (the end of a
// loop, of a cell) the pool collects once, while the rank is idle, so the next
// loop starts with its blocks back. A rank that went on to in-place or tensor
// calls is not idle: a collection there (15-35 ms with TensorFlow.js loaded)
// landed inside one of those calls, and its peers waited for it.
// When all of this finds no block, and for results below `minBytes`, the
// result is a plain fresh array.
import type { DroppedResults } from "./dropped-results";
import type { TypedArrayConstructor } from "./registered-memory";
import type { CommArray, CommOptions } from "./types";

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
  /** finds dropped results after scavenges (dropped-results.ts); without it, the FinalizationRegistry alone */
  dropped?: DroppedResults;
  /** faults in a new block's pages in one system call (peer-memory.ts); false or absent: a write per page does */
  populate?: (block: SharedArrayBuffer) => boolean;
}

const MiB = 1024 * 1024;

/**
 * A world's pool settings: results pooled from 1 MiB (below, malloc reuses memory it has touched
 * already), up to 1 GiB split between the world's ranks and at most 512 MiB a rank (eight 64 MiB
 * results: room for a loop whose collections cost more than fresh pages, until V8's own bring
 * blocks back); collections forced only for results of 16 MiB or more, where a fresh array's page
 * faults cost more than a collection. `given` overrides each (CommOptions.resultPool).
 */
export function resultPoolOptions(size: number, given: CommOptions["resultPool"]): ResultPoolOptions {
  const options = { minBytes: MiB, budgetBytes: Math.min(512 * MiB, Math.floor(1024 / size) * MiB), collectFromBytes: 16 * MiB, ...given };
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`resultPool.${name} must be an integer >= 0 (bytes), got ${value}`);
  }
  return options;
}

/** How long a rank's pool waits after its last large take before collecting, milliseconds. */
const IDLE_COLLECT_MS = 200;

/** Blocks are whole 64-byte lines. */
const LINE = 64;

/** Page bytes: one write per page faults it in (a read would map the shared zero page and fault again on the write). */
const PAGE = 4096;

/**
 * Blocks of a size the pool claims before it weighs collecting against claiming. A loop that drops
 * its results still holds one or two of them when it calls again (the one in hand, and one that a
 * suspended frame may keep), so with four blocks out a collection brings back two or more and runs
 * every other call at most; with two it ran every call (20-35 ms each in a rank with TensorFlow.js
 * loaded, against 30-40 ms to fault in a 64 MiB block once).
 */
const BLOCKS_BEFORE_COLLECTING = 4;

/** Faults in every page of `block` (its contents are undefined until the caller writes them). */
function touchPages(block: SharedArrayBuffer): void {
  const bytes = new Uint8Array(block);
  for (let i = 0; i < bytes.length; i += PAGE) bytes[i] = 0;
}

/** A running estimate: the first sample, then each new one weighs a quarter. */
const smoothed = (estimate: number | undefined, sample: number) => (estimate === undefined ? sample : 0.75 * estimate + 0.25 * sample);

export class ResultPool {
  /** block bytes -> the pool's own objects of idle blocks */
  private readonly idle = new Map<number, SharedArrayBuffer[]>();
  /** takes left before the next forced collection: after one that brought nothing back, as many as the pool has blocks */
  private skipCollections = 0;
  /** block bytes -> blocks of that size handed out and not back yet */
  private readonly outBySize = new Map<number, number>();
  /** measured in this rank: ms a forced collection took (with the task after it), and ms per byte of faulting in a new block */
  private collectMs?: number;
  private faultMsPerByte?: number;
  private blocks = 0;
  private pooledBytes = 0;
  private readonly registry = new FinalizationRegistry<SharedArrayBuffer>((kept) => this.returned(kept));
  private readonly nextTask: () => Promise<void>;
  private idleTimer?: ReturnType<typeof setTimeout>;
  /** inside take's yield to the event loop (a call is under way) */
  private taking = false;

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
      // results dropped since the last take are found by a scavenge; their finalizers run in the task after it
      if ((this.outBySize.get(size) ?? 0) > 0) this.hooks.dropped?.scavenge();
      // the one place a loop of calls yields to the event loop: an idle collection due now must wait
      this.taking = true;
      try {
        await this.nextTask();
      } finally {
        this.taking = false;
      }
      kept = this.idleBlock(size);
      if (!kept && this.skipCollections > 0) this.skipCollections--;
    }
    // a collection, where one costs less than faulting in a fresh block's pages (and may find one)
    if (!kept && this.collectingIsCheaper(size)) kept = await this.collectFor(size, false);
    if (!kept) {
      const spares = this.sparesFor(size);
      kept = this.claimTouched(size);
      for (let i = 0; kept && i < spares; i++) this.claimSpare(size);
    }
    // the budget is full: a collection is the only way to a block
    if (!kept && this.worthCollecting(size)) kept = await this.collectFor(size, true);
    if (!kept) return undefined;
    this.outBySize.set(size, (this.outBySize.get(size) ?? 0) + 1);
    const handed = structuredClone(kept);
    if (!this.hooks.dropped?.watch(handed, kept, (block) => this.returned(block))) this.registry.register(handed, kept);
    this.carryBallast(handed, size);
    if (size >= this.options.collectFromBytes) this.collectWhenIdle();
    return new ctor(handed, 0, length);
  }

  /**
   * A new block of `size` with every page faulted in now, or undefined when the budget has no room.
   * Faulting is timed: it is the cost a collection is weighed against (collectingIsCheaper).
   */
  private claimTouched(size: number): SharedArrayBuffer | undefined {
    const block = this.claim(size);
    if (!block) return undefined;
    const start = performance.now();
    if (!this.hooks.populate?.(block)) touchPages(block);
    this.faultMsPerByte = smoothed(this.faultMsPerByte, (performance.now() - start) / size);
    return block;
  }

  /**
   * A forced full collection (timed), then an idle block of `size` if one came back, else, with
   * `makeRoom`, a new one claimed in the room that idle blocks of other sizes left. After a
   * collection that brought nothing back (the caller keeps its results), the next waits until as
   * many results as the pool has blocks were taken, or a block came back by itself.
   */
  private async collectFor(size: number, makeRoom: boolean): Promise<SharedArrayBuffer | undefined> {
    const start = performance.now();
    this.hooks.collect!();
    await this.nextTask();
    this.collectMs = smoothed(this.collectMs, performance.now() - start);
    let kept = this.idleBlock(size);
    if (!kept && makeRoom) kept = this.claimTouched(size);
    if (!kept) this.skipCollections = this.blocks;
    return kept;
  }

  /**
   * Whether to collect before claiming a new block: BLOCKS_BEFORE_COLLECTING blocks of this size
   * are out (the caller may have dropped some), and a collection has cost less than faulting in a
   * block of `size` (both as measured in this rank; before the first collection, only a block's
   * faulting is known).
   */
  private collectingIsCheaper(size: number): boolean {
    // with scavenges finding dropped results, three out and none found means scavenges missed two:
    // results that outlived a collection were promoted, and only a full collection finds them
    const before = this.hooks.dropped ? 3 : BLOCKS_BEFORE_COLLECTING;
    if (!this.mayCollect(size) || this.faultMsPerByte === undefined || (this.outBySize.get(size) ?? 0) < before) return false;
    return (this.collectMs ?? 0) < this.faultMsPerByte * size;
  }

  /** A forced collection is allowed for results of `size`: the host has one, the size is large enough, and no fruitless one is being waited out. */
  private mayCollect(size: number): boolean {
    return this.hooks.collect !== undefined && size >= this.options.collectFromBytes && this.skipCollections === 0;
  }

  /** Ballast by handed-out result (the WeakMap entry lives exactly as long as the result's buffer). */
  private readonly ballast = new WeakMap<SharedArrayBuffer, ArrayBuffer>();

  /**
   * Makes V8 count `bytes` of external memory for as long as `handed` lives (see the header), for
   * results that no forced collection brings back (below collectFromBytes, or a host without one).
   */
  private carryBallast(handed: SharedArrayBuffer, bytes: number): void {
    if (this.hooks.ballast === false || (this.hooks.collect !== undefined && bytes >= this.options.collectFromBytes)) return;
    try {
      this.ballast.set(handed, new ArrayBuffer(bytes));
    } catch {
      // no address space for it: the result is still valid, V8 only learns less about it
    }
  }

  /** Blocks the pool owns (idle and out) and their bytes: for tests and diagnostics. */
  stats(): { blocks: number; idle: number; out: number; bytes: number } {
    let idle = 0;
    for (const list of this.idle.values()) idle += list.length;
    return { blocks: this.blocks, idle, out: this.blocks - idle, bytes: this.pooledBytes };
  }

  /** What this rank measured (undefined until it happened): a forced collection, and faulting in a block of `bytes`, in ms. For tests and diagnostics. */
  costs(bytes: number): { collectMs?: number; faultMs?: number } {
    return { collectMs: this.collectMs, faultMs: this.faultMsPerByte === undefined ? undefined : this.faultMsPerByte * bytes };
  }

  /**
   * A collective ran on this rank (with a result from the pool or not): a pending idle collection
   * waits another IDLE_COLLECT_MS. Costs nothing while none is pending.
   */
  noteCall(): void {
    if (this.idleTimer !== undefined) this.collectWhenIdle();
  }

  /**
   * A full collection once no block was taken, and no collective called (noteCall), for IDLE_COLLECT_MS: a loop
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

  /**
   * Spare blocks to claim with a block of `size`. With scavenges finding dropped results, a loop of
   * calls runs on two blocks (the result in hand and the next), but a block's first claim faults in
   * its pages, which costs more than the call (and its peers wait for it), so claims of a large
   * size come with spares: the claims land in the call that needs the first block, not in later
   * ones on whichever rank ran short first. The first claim of a size takes two: a rank's early
   * calls meet V8's first full collections (its heap growing, the caller's new arrays), which move
   * the result in hand to the old generation, where no scavenge finds it; the third block covers it
   * until a collection does. Later claims (a loop that keeps results) take one.
   */
  private sparesFor(size: number): number {
    if (this.hooks.dropped === undefined || size < this.options.collectFromBytes) return 0;
    const held = (this.outBySize.get(size) ?? 0) + (this.idle.get(size)?.length ?? 0);
    return held === 0 ? 2 : 1;
  }

  private claimSpare(size: number): void {
    const spare = this.claimTouched(size);
    if (spare) this.keepIdle(spare);
  }

  private keepIdle(block: SharedArrayBuffer): void {
    const list = this.idle.get(block.byteLength);
    if (list) list.push(block);
    else this.idle.set(block.byteLength, [block]);
  }

  private idleBlock(size: number): SharedArrayBuffer | undefined {
    this.hooks.dropped?.settle();
    return this.idle.get(size)?.pop();
  }

  /** The pool is full and blocks are out: some may have been dropped since the last collection. */
  private worthCollecting(size: number): boolean {
    return this.mayCollect(size) && this.stats().out > 0;
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
    this.outBySize.set(size, this.outBySize.get(size)! - 1);
    this.keepIdle(kept);
  }
}
