// The world a rank's communication thread (comm-thread.ts) joins, and how
// it joins it, on the comm thread itself.
//
// Thread ranks: a second shm world beside the ranks' one (createCommThreadWorld);
// attaching is synchronous. Process ranks: a second tcp world, its own
// rendezvous run by the kernel beside the ranks' one; each rank process's comm
// thread listens, registers and connects to the other ranks' comm threads, so
// its sockets, frames and call numbers are apart from the rank thread's, and
// they are read and written on the comm thread's event loop, which TF.js on the
// rank's main thread never blocks.
import { attachShmCommunicator } from "./shm-world";
import type { ShmWorldInit } from "./shm-layout";
import { connectTcpWorld } from "./tcp-world";
import type { CommOptions, Communicator } from "./types";

/** A tcp world for the comm threads of a group of process ranks. */
export interface TcpCommThreadWorld {
  kind: "tcp";
  size: number;
  /** host:port of the comm threads' rendezvous (startTcpRendezvous) */
  rendezvous: string;
  /** address the comm thread listens on for its peers; default 127.0.0.1 */
  host?: string;
  /** how long joining may take, milliseconds */
  joinTimeoutMs: number;
  /** the world's id and secret (64 hex digits: the world crosses to the comm thread by structured clone) */
  world: string;
  secret: string;
  /** TLS on connections to other hosts (comm/data-tls.ts) */
  tls?: boolean;
  /** `--data-via ssh`: the relay socket connections to other hosts go through (hosts/data-relay.ts) */
  relay?: string;
}

export type CommThreadWorld = ShmWorldInit | TcpCommThreadWorld;

export function isCommThreadWorld(world: unknown): world is CommThreadWorld {
  if (typeof world !== "object" || world === null) return false;
  const w = world as Partial<ShmWorldInit> & Partial<TcpCommThreadWorld>;
  if (w.kind === "shm") return w.control instanceof SharedArrayBuffer;
  return w.kind === "tcp" && typeof w.rendezvous === "string" && Number.isInteger(w.size) && (w.size as number) >= 1;
}

/**
 * Joins `world` as `rank` (on the comm thread). Aborting `signal` gives a tcp join up and later
 * ends every wait of the communicator with a CommCancelledError (the group was cancelled).
 */
export async function joinCommThreadWorld(world: CommThreadWorld, rank: number, options: CommOptions, signal: AbortSignal): Promise<Communicator> {
  if (world.kind === "shm") return attachShmCommunicator(world, rank, options);
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort("deadline"), world.joinTimeoutMs);
  const either = AbortSignal.any([signal, deadline.signal]);
  try {
    return await connectTcpWorld({
      ...options, rank, size: world.size, rendezvous: world.rendezvous, signal: either, ...(world.host ? { host: world.host } : {}), ...(world.relay ? { relay: world.relay } : {}),
      credentials: { world: world.world, secret: Buffer.from(world.secret, "hex") }, tls: world.tls === true,
    });
  } catch (error) {
    if (deadline.signal.aborted && !signal.aborted) {
      throw new Error(`rank ${rank}'s communication thread could not join its world within ${(world.joinTimeoutMs / 1000).toFixed(1)} s (a peer's did not connect)`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
