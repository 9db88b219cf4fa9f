// Creating a shared-memory world on the kernel's main thread, attaching a
// rank's communicator inside its worker thread, and cancelling the world.
import { CommCore } from "./comm-core";
import { GroupCommunicator } from "./communicator";
import { Wasm } from "./wasm-api";
import { attachDirectCollectives } from "./shm-direct";
import { wasmKernels } from "./reduce-wasm";
import { ShmHeap } from "./shm-heap";
import { fullGc } from "./full-gc";
import { droppedResults } from "./dropped-results";
import { ResultPool, resultPoolOptions } from "./result-pool";
import { wasmMemoryCopy } from "./wasm-copy";
import { MAX_SHM_RANKS, ShmLayout, STATE, type ShmWorldInit, type ShmWorldOptions } from "./shm-layout";
import { PeerReads, blockPopulator, peerMemoryOps } from "./peer-memory";
import { ShmTransport, STATE_CANCELLED, STATE_RUNNING, stopWorld } from "./shm-transport";
import type { CommOptions, Communicator } from "./types";
import { SharedReadCounts } from "./wire-counters";
import { SharedIngress } from "./link";

const MiB = 1024 * 1024;
const WASM_PAGE = 64 * 1024;
/** wasm32 memories stop at 4 GiB */
const MAX_WASM_PAGES = 65536;
const DEFAULT_REGISTERED_BYTES = 2 * 1024 * MiB;
/**
 * How long a waiting rank polls before it sleeps, milliseconds (ranks no more than cores). A sleep
 * and its wake cost 100-200 us on the build machine's VM, and a rank woken late makes its peer's
 * next wait late too: with 50 us of polling, pairs of rank threads fell into taking turns to sleep,
 * and a 4 KiB allReduce's median went from 11 us to 37-145 us (docs/collectives.md, "Figures behind
 * the code"). A rank's thread has nothing else to run while it waits, so polling costs no work of
 * its own; what it could take from is the kernel's thread, which the OS scheduler still serves.
 */
const DEFAULT_SPIN_MS = 1;
/** Direct-path chunk bytes: a chunk copied in is still in cache (2 MiB L2 here) when peers reduce it, and a 64 MiB message takes 64 chunks. */
const DEFAULT_SLOT_BYTES = (size: number) => (size <= 8 ? 1024 * 1024 : 256 * 1024);

function registeredPagesFor(bytes: number | undefined, availablePages: number): number {
  if (bytes === undefined) return Math.min(DEFAULT_REGISTERED_BYTES / WASM_PAGE, availablePages);
  if (!Number.isInteger(bytes) || bytes < 0 || Math.ceil(bytes / WASM_PAGE) > availablePages) {
    throw new RangeError(`registeredBytes must be an integer in [0, ${availablePages * WASM_PAGE}] (4 GiB minus the world's fixed memory), got ${bytes}`);
  }
  return Math.ceil(bytes / WASM_PAGE);
}

function powerOfTwo(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 4096 || (n & (n - 1)) !== 0) throw new RangeError(`${name} must be a power of two >= 4096 bytes, got ${n}`);
  return n;
}

/**
 * The shared memory of a world of `size` rank threads. The returned object
 * is structured-cloneable: pass it in workerData to every rank.
 */
export function createShmWorld(size: number, options: ShmWorldOptions = {}): ShmWorldInit {
  if (!Number.isInteger(size) || size < 1 || size > MAX_SHM_RANKS) {
    throw new RangeError(`createShmWorld: size must be an integer in [1, ${MAX_SHM_RANKS}], got ${size}`);
  }
  const collectiveRingBytes = powerOfTwo(options.collectiveRingBytes ?? (size <= 8 ? 1 * MiB : 256 * 1024), "collectiveRingBytes");
  const userRingBytes = powerOfTwo(options.userRingBytes ?? 256 * 1024, "userRingBytes");
  const slotBytes = options.slotBytes ?? DEFAULT_SLOT_BYTES(size);
  if (!Number.isInteger(slotBytes) || slotBytes < 4096 || slotBytes % 64 !== 0) throw new RangeError(`slotBytes must be a multiple of 64 bytes >= 4096, got ${slotBytes}`);
  const layout = new ShmLayout(size, collectiveRingBytes, userRingBytes, slotBytes);
  const pages = Math.ceil(layout.dataBytes / WASM_PAGE);
  const registeredPages = registeredPagesFor(options.registeredBytes, MAX_WASM_PAGES - pages);
  // The maximum is reserved as address space now (a shared memory never moves); pages are committed as they are used.
  const memory = new Wasm.Memory({ initial: pages, maximum: pages + registeredPages, shared: true });
  const control = new SharedArrayBuffer(layout.controlWords * 4);
  const spinMs = options.spinMs ?? DEFAULT_SPIN_MS;
  if (!(Number.isFinite(spinMs) && spinMs >= 0)) throw new RangeError(`spinMs must be a finite number of milliseconds >= 0, got ${spinMs}`);
  return {
    kind: "shm", size, control, memory, collectiveRingBytes, userRingBytes, slotBytes,
    registeredAt: pages * WASM_PAGE, registeredBytes: registeredPages * WASM_PAGE,
    directReads: SharedReadCounts.createBuffer(size),
    ingressClocks: SharedIngress.createBuffer(size),
    spinMs,
  };
}

/** The world communicator of `rank`, for use in that rank's thread. */
export function attachShmCommunicator(init: ShmWorldInit, rank: number, options: CommOptions = {}): Communicator {
  if (!init || init.kind !== "shm" || !(init.control instanceof SharedArrayBuffer)) {
    throw new TypeError("attachShmCommunicator: init must be the object createShmWorld returned");
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= init.size) {
    throw new RangeError(`attachShmCommunicator: rank must be an integer in [0, ${init.size - 1}], got ${rank}`);
  }
  const transport = new ShmTransport(init, rank, options.wire);
  const reads = new SharedReadCounts(init.directReads, init.size);
  transport.wire.attachSharedReads(reads);
  const core = new CommCore(transport, options);
  const heap = new ShmHeap(init, rank);
  core.memory = heap;
  const ops = peerMemoryOps();
  const peers = ops && new PeerReads(ops, transport.ctl, transport.layout, rank, init.size);
  core.direct = attachDirectCollectives(transport, wasmKernels(init.memory), heap, wasmMemoryCopy(init.memory), reads, peers);
  core.results = new ResultPool(resultPoolOptions(init.size, options.resultPool), { collect: fullGc(), dropped: droppedResults(), populate: blockPopulator() });
  return new GroupCommunicator(core, Array.from({ length: init.size }, (_, i) => i), 0, "world");
}

/**
 * Ends every wait of every rank of the world, now and later, with a
 * CommCancelledError carrying `reason`. Callable from any thread (the
 * kernel's main thread on interrupt or when a rank fails). A cancelled world
 * stays cancelled: create a new one for the next cell.
 */
export function cancelShmWorld(init: ShmWorldInit, reason = "cancelled by the kernel"): void {
  stopWorld(new Int32Array(init.control), ShmLayout.of(init), STATE_CANCELLED, reason);
}

/** True once the world was cancelled or aborted by a rank (e.g. a mismatched call). */
export function isShmWorldStopped(init: ShmWorldInit): boolean {
  return Atomics.load(new Int32Array(init.control), STATE) !== STATE_RUNNING;
}
