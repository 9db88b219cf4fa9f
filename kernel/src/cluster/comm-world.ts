/**
 * A group's communication world, in the cluster's own terms, over
 * kernel/src/comm:
 *
 * - shm (thread ranks): shared memory created on the kernel's thread and
 *   joined by each rank on its own thread; the kernel cancels it by setting
 *   its cancel word, which every rank's waits watch. Beside it, a second
 *   world for the ranks' communication threads (comm/comm-thread.ts), which
 *   run collectives while the rank threads compute; it is cancelled with
 *   the first.
 * - tcp (process ranks): the kernel runs a rendezvous; each rank listens,
 *   registers there and connects to every peer (Unix sockets on one host).
 *   Processes share no memory, so each rank cancels its own communicator
 *   when the kernel's cancel command reaches it. With `commThread`, a second
 *   rendezvous for the ranks' communication threads, which join their own tcp
 *   world while the rank joins its own (comm/comm-thread-world.ts).
 */
import { attachShmCommunicator, cancelShmWorld, createShmWorld, type Communicator, type LinkModel, type SpanHook } from "../comm";
import { MAX_SHM_RANKS } from "../comm/shm-layout";
import { closeTcpWorld, connectTcpWorld, startTcpRendezvous } from "../comm/tcp-world";
import { DATA_RELAY_ENV } from "../hosts/data-relay";
import { CommThread, createCommThreadWorld, type CommThreadSpan } from "../comm/comm-thread";
import type { ShmWorldAddress, TcpWorldAddress, WorldAddress } from "./rank-messages";
import type { WireCounters } from "../comm/wire-counters";

/** Most ranks the threads backend runs: the shm transport keeps a channel per ordered pair of ranks. */
export const MAX_THREAD_RANKS = MAX_SHM_RANKS;

/**
 * Least time a rank gets to join a tcp world (milliseconds): every peer must
 * be scheduled to listen and connect, which on a loaded machine can take
 * longer than a short --timeout.
 */
export const JOIN_FLOOR_MS = 10_000;

/**
 * Environment variable naming the address a process rank listens on for its
 * peers (default 127.0.0.1): an agent sets it to the address the kernel
 * reached it at, so ranks on other hosts can connect.
 */
export const LISTEN_HOST_ENV = "DISTLAB_RANK_LISTEN_HOST";

/** The kernel's side of one world. */
export interface KernelWorld {
  /** What every rank's connect task carries. */
  readonly address: WorldAddress;
  /** Wakes every rank waiting in this world (shm); a no-op where ranks cancel themselves (tcp). */
  cancel(reason: string): void;
  /** Every rank joined, or the join failed: the kernel's part of forming the world is over. */
  formed(): void;
}

export function createShmKernelWorld(size: number): KernelWorld {
  const address: ShmWorldAddress = { ...createShmWorld(size), commThreadWorld: createCommThreadWorld(size) };
  return { address, cancel: (reason) => cancelShmWorlds(address, reason), formed: () => undefined };
}

function cancelShmWorlds(address: ShmWorldAddress, reason: string): void {
  cancelShmWorld(address, reason);
  if (address.commThreadWorld) cancelShmWorld(address.commThreadWorld, reason);
}

/**
 * `host`: the address the rendezvous listens on, one every rank can reach (default 127.0.0.1);
 * `tls`: encrypt the connections between hosts; `commThread`: every rank also starts a
 * communication thread at the join, joined to a tcp world of its own through a second rendezvous.
 * Each world gets fresh credentials, which travel to the ranks inside their connect task only.
 */
export async function createTcpKernelWorld(size: number, host?: string, options: { tls?: boolean; commThread?: boolean } = {}): Promise<KernelWorld> {
  const tls = options.tls === true;
  const rendezvous = await startTcpRendezvous(size, { ...(host ? { host } : {}), tls });
  const threads = options.commThread ? await startTcpRendezvous(size, { ...(host ? { host } : {}), tls }) : undefined;
  const { world, secret } = rendezvous.credentials;
  const address: TcpWorldAddress = {
    kind: "tcp", rendezvous: rendezvous.address, world, secret: secret.toString("hex"), tls,
    ...(threads ? { commThread: { rendezvous: threads.address, world: threads.credentials.world, secret: threads.credentials.secret.toString("hex") } } : {}),
  };
  // Closing the rendezvous also ends the joins still waiting on it (a rank died while joining).
  return { address, cancel: () => undefined, formed: () => { rendezvous.close(); threads?.close(); } };
}

/** A rank's side of one world. */
export interface JoinedWorld {
  readonly comm: Communicator;
  /** The rank's communication thread: thread ranks (started on first use), process ranks (started at the join). */
  readonly commThread?: CommThread;
  /** Ends every wait of this rank in this world, now and later, with a CommCancelledError. */
  cancel(reason: string): void;
  /** Lets go of the world's connections (tcp); called when the rank joins the next world. */
  close(): void;
}

export interface JoinOptions {
  rank: number;
  size: number;
  /** How long a collective waits for a peer, milliseconds. */
  timeoutMs: number;
  /** How long joining a tcp world may take, milliseconds; default the larger of timeoutMs and JOIN_FLOOR_MS. */
  joinTimeoutMs?: number;
  link?: LinkModel;
  /** Hears of every call the rank finishes (the timeline's comm spans). */
  onSpan?: SpanHook;
  /** Hears of every job the rank's communication thread finishes, with its times on that thread. */
  onCommThreadSpan?: (span: CommThreadSpan) => void;
  /** The rank's wire counters, kept across the worlds it joins (dist.stats). */
  wire?: WireCounters;
  /** The epoch (cell) of each call; see CommOptions.epoch. */
  epoch?: (call: string) => number;
}

export async function joinCommWorld(address: WorldAddress, options: JoinOptions): Promise<JoinedWorld> {
  const commOptions = {
    timeoutMs: options.timeoutMs,
    ...(options.link ? { link: options.link } : {}),
    ...(options.onSpan ? { onSpan: options.onSpan } : {}),
    ...(options.wire ? { wire: options.wire } : {}),
    ...(options.epoch ? { epoch: options.epoch } : {}),
  };
  if (address.kind === "shm") {
    const comm = attachShmCommunicator(address, options.rank, commOptions);
    const commThread = address.commThreadWorld
      ? new CommThread({
          world: address.commThreadWorld,
          rank: options.rank,
          timeoutMs: options.timeoutMs,
          ...(options.link ? { link: options.link } : {}),
          ...(options.onCommThreadSpan ? { onSpan: options.onCommThreadSpan } : {}),
        })
      : undefined;
    return {
      comm,
      ...(commThread ? { commThread } : {}),
      cancel: (reason) => cancelShmWorlds(address, reason),
      close: () => void commThread?.close(),
    };
  }
  const canceller = new AbortController();
  // A peer that never connects (its process died while joining) would hold the join forever.
  const joinTimeoutMs = options.joinTimeoutMs ?? Math.max(options.timeoutMs, JOIN_FLOOR_MS);
  const deadline = setTimeout(() => canceller.abort("deadline"), joinTimeoutMs);
  const listenHost = process.env[LISTEN_HOST_ENV];
  const relay = process.env[DATA_RELAY_ENV] || undefined;
  // The comm thread joins its world while this thread joins the ranks' one: both rendezvous need every rank.
  const commThread = address.commThread
    ? new CommThread({
        world: { kind: "tcp", size: options.size, ...address.commThread, tls: address.tls, joinTimeoutMs, ...(listenHost ? { host: listenHost } : {}), ...(relay ? { relay } : {}) },
        rank: options.rank,
        timeoutMs: options.timeoutMs,
        ...(options.link ? { link: options.link } : {}),
        ...(options.onCommThreadSpan ? { onSpan: options.onCommThreadSpan } : {}),
      })
    : undefined;
  let comm: Communicator;
  try {
    [comm] = await Promise.all([
      connectTcpWorld({
        ...commOptions, rank: options.rank, size: options.size, rendezvous: address.rendezvous, signal: canceller.signal, ...(listenHost ? { host: listenHost } : {}), ...(relay ? { relay } : {}),
        credentials: { world: address.world, secret: Buffer.from(address.secret, "hex") }, tls: address.tls,
      }),
      commThread?.ready(),
    ]);
  } catch (error) {
    const timedOut = canceller.signal.aborted;
    canceller.abort("the join failed"); // the other half of the join gives up too
    void commThread?.close();
    if (!timedOut) throw error;
    throw new Error(`rank ${options.rank} could not join the group's world within ${(joinTimeoutMs / 1000).toFixed(1)} s (a peer did not connect)`);
  } finally {
    clearTimeout(deadline);
  }
  return {
    comm,
    ...(commThread ? { commThread } : {}),
    cancel: (reason) => {
      canceller.abort(reason);
      commThread?.cancel(reason);
    },
    close: () => {
      void closeTcpWorld(comm);
      void commThread?.close();
    },
  };
}
