/**
 * The ring allReduce between hosts in native code (kernel/native/tcp-ring.cc): a world whose
 * ranks span more than one machine opens, next to its framed connections, one more connection
 * from each rank to its right neighbour, authenticated as the others are (data-handshake.ts), and
 * hands both ends to the addon. A ring allReduce of the world (float32, float64 or int32; sum,
 * mean, max, min or product; no emulated link) then runs there, on a thread of libuv's pool,
 * while the event loop goes on answering the other ranks' probes and timing the call out
 * (tcp-transport.ts). docs/collectives.md, "The ring between hosts", says why and what it saved.
 *
 * Every rank decides alike from the rendezvous table, which all ranks share: the ring connection
 * is opened only when every rank offered one (built the addon, no TLS, no relay) and the ranks are
 * on more than one machine (ranks of one machine talk over Unix sockets instead).
 *
 * A native call that ends other than by finishing (a stop asked, a lost neighbour, a timeout)
 * leaves the ring connection mid-stream: the ring is then broken for good, and the transport stops
 * the world, as it does for a lost peer.
 *
 * Environment: DISTLAB_TCP_RING=js keeps every call on the framed connections (for comparison, or
 * a platform where the addon misbehaves); "native" (the default) uses the addon where it is built.
 */
import * as net from "node:net";
import * as path from "node:path";
import type { Socket } from "node:net";
import { AcceptorSide, DiallerSide, authenticate, socketBytes, type WorldCredentials } from "./data-handshake";
import { HANDSHAKE_TIMEOUT_MS } from "../hosts/handshake";
import { addonOnce, addonSetting } from "../native-addons";
import { DESCRIPTOR_WORDS, writeDescriptor, readDescriptor, type Descriptor } from "./descriptor";
import type { CommArray } from "./types";

/** What kernel/native/tcp-ring.cc exports. */
interface TcpRingAddon {
  /** dup(fd), so the connection outlives its destroyed net.Socket; `early`: bytes read past the handshake */
  adopt(fd: number, early: Uint8Array): number;
  close(fd: number): void;
  allReduce(
    sendFd: number, recvFd: number, array: CommArray, dtype: number, redop: number, rank: number, n: number,
    header: Int32Array, leftHeader: Int32Array, control: Int32Array,
    done: (error: string | null, headerMismatch: boolean, bytesSent: number, bytesReceived: number) => void,
  ): void;
}

/** Where `npm run setup` builds the addon (kernel/native/build), from src/comm or dist/comm alike. */
const TCP_RING_ADDON = path.join(__dirname, "..", "..", "native", "build", "tcp-ring.node");

/** dtype codes (dtype.ts) the addon combines: float32, float64, int32. */
const NATIVE_DTYPES = new Set([0, 1, 2]);
/** REDUCE_OPS codes (descriptor.ts) the addon runs: sum, mean (summed; the caller divides), max, min, product. */
const NATIVE_REDOPS = new Map([[0, 0], [1, 0], [2, 2], [3, 3], [4, 4]]);

/** The addon, or undefined where it was not built, cannot load, or DISTLAB_TCP_RING=js. */
export const tcpRingAddon = addonOnce<TcpRingAddon>(TCP_RING_ADDON, (env) => addonSetting(env, "DISTLAB_TCP_RING", ["native", "js"] as const) !== "js");

/**
 * Takes a connection fresh from its handshake away from Node: JavaScript stops reading it, its
 * handshake's last writes leave, what was read past the handshake (`rest`, and anything buffered
 * since) goes with it, and the addon keeps a duplicate of its descriptor while the net.Socket is
 * destroyed. Reading stops before anything is awaited, so no byte of the ring is read by
 * JavaScript.
 */
export async function adoptSocket(addon: TcpRingAddon, socket: Socket, rest: Buffer): Promise<number> {
  const handle = (socket as unknown as { _handle?: { fd?: number; readStop?: () => number } })._handle;
  if (typeof handle?.fd !== "number" || handle.fd < 0) throw new Error("the ring connection has no file descriptor here");
  socket.pause();
  handle.readStop?.();
  if (socket.writableLength > 0) await new Promise<void>((resolve) => socket.once("drain", resolve));
  const buffered: Buffer[] = [rest];
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) buffered.push(chunk);
  const fd = addon.adopt(handle.fd, Buffer.concat(buffered));
  socket.destroy();
  return fd;
}

/** One native call in flight: its result, and how to stop it. */
export interface NativeRingCall {
  /**
   * resolves with the bytes it sent to the right and received from the left; rejects with
   * NativeRingMismatch, NativeRingLost, or an Error saying why it stopped
   */
  done: Promise<{ sent: number; received: number }>;
  /** the left neighbour's descriptor, once it arrived (a mismatch's report names it) */
  leftDescriptor(): Descriptor;
  /** how many sends and receives moved bytes so far: grows while the call is alive */
  progress(): number;
  /** asks the call to stop (within the addon's poll interval, 20 ms) */
  stop(): void;
}

/** The error of a native call whose left neighbour is in another call. */
export class NativeRingMismatch extends Error {}

/** The error of a native call whose connection to `peer` failed (closed, reset). */
export class NativeRingLost extends Error {
  constructor(message: string, readonly peer: number) {
    super(message);
  }
}

export class NativeRing {
  /** why the ring can no longer be used (a call ended mid-stream, or closed), if it cannot */
  broken?: string;
  /** the call in flight: its connections close only once it has returned */
  private current?: NativeRingCall;
  private closed = false;
  readonly left: number;
  readonly right: number;

  constructor(
    private readonly addon: TcpRingAddon,
    readonly rank: number,
    readonly size: number,
    /** the adopted connection to the right neighbour, and from the left */
    private readonly sendFd: number,
    private readonly recvFd: number,
  ) {
    this.left = (rank - 1 + size) % size;
    this.right = (rank + 1) % size;
  }

  /** Whether a world allReduce of this dtype and reduce op (codes) can run here. */
  takes(dtype: number, redop: number): boolean {
    return this.broken === undefined && NATIVE_DTYPES.has(dtype) && NATIVE_REDOPS.has(redop);
  }

  /** Reduces `x` in place across the ring. */
  allReduce(x: CommArray, desc: Descriptor): NativeRingCall {
    const header = new Int32Array(DESCRIPTOR_WORDS);
    writeDescriptor(header, 0, desc);
    const leftHeader = new Int32Array(DESCRIPTOR_WORDS);
    const control = new Int32Array(new SharedArrayBuffer(8));
    const done = new Promise<{ sent: number; received: number }>((resolve, reject) => {
      this.addon.allReduce(this.sendFd, this.recvFd, x, desc.dtype, NATIVE_REDOPS.get(desc.redop)!, this.rank, this.size, header, leftHeader, control,
        (error, headerMismatch, sent, received) => {
          if (error === null) return resolve({ sent, received });
          this.broken ??= error;
          // the addon names the side whose socket failed ("... the right neighbour ...", "the left neighbour ...")
          const lost = error.includes("right neighbour") ? this.right : error.includes("left neighbour") ? this.left : undefined;
          reject(headerMismatch ? new NativeRingMismatch(error) : lost !== undefined ? new NativeRingLost(error, lost) : new Error(error));
        });
    });
    const call: NativeRingCall = {
      done,
      leftDescriptor: () => readDescriptor(leftHeader, 0),
      progress: () => Atomics.load(control, 1),
      stop: () => void Atomics.store(control, 0, 1),
    };
    this.current = call;
    const settled = () => {
      if (this.current === call) this.current = undefined;
    };
    done.then(settled, settled);
    return call;
  }

  /** Closes both connections (the neighbours' calls then end); a call in flight is stopped first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.broken ??= "closed";
    const closeFds = () => {
      this.addon.close(this.sendFd);
      this.addon.close(this.recvFd);
    };
    const call = this.current;
    if (!call) return closeFds();
    call.stop();
    call.done.then(closeFds, closeFds);
  }
}

/** What the ring needs of a rank's row in the rendezvous table (tcp-world.ts). */
export interface RingEntry {
  rank: number;
  host: string;
  hostname: string;
  machine?: string;
  /** where the rank listens for its left neighbour's ring connection, if it offers one */
  ringPort?: number;
}

/**
 * Whether the world opens its native ring connections: every rank offered one, and the ranks span
 * machines (or `wanted` asks for them on one). Every rank decides alike from the shared table.
 */
export function ringWanted(table: readonly RingEntry[], wanted: boolean | undefined): boolean {
  if (table.length < 2 || !table.every((e) => e.ringPort !== undefined)) return false;
  return wanted === true || new Set(table.map((e) => e.machine ?? `${e.hostname} rank ${e.rank}`)).size > 1;
}

/** A rank's side of the native ring: the listener its left neighbour dials, and the dial to its right. */
export interface RingSide {
  server: net.Server;
  /** Dials the right neighbour and awaits the left's connection, both authenticated, and adopts both. */
  connect(table: readonly RingEntry[]): Promise<NativeRing>;
  /** Destroys whatever was accepted but not adopted. */
  dispose(): void;
}

/**
 * The native ring's side of this rank, or undefined where it offers none: no addon, or `wanted`
 * false (the world's `nativeRing: false`, TLS or a relay: the ring's bytes would bypass them).
 */
export function nativeRingSide(rank: number, size: number, credentials: WorldCredentials, wanted: boolean | undefined, onRefused: (line: string) => void): RingSide | undefined {
  const addon = wanted === false || size < 2 ? undefined : tcpRingAddon();
  if (!addon) return undefined;
  const left = (rank - 1 + size) % size;
  const right = (rank + 1) % size;
  const loose = new Set<net.Socket>();
  let fromLeft: Promise<number> | undefined;
  let onLeft: { resolve(fd: number): void; reject(e: Error): void } | undefined;
  const leftArrived = new Promise<number>((resolve, reject) => (onLeft = { resolve, reject }));
  leftArrived.catch(() => undefined);
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    loose.add(socket);
    const admits = (from: number) => (from !== left ? `rank ${from} is not rank ${rank}'s left neighbour (rank ${left})` : fromLeft ? `rank ${left}'s ring connection is already open` : undefined);
    authenticate(socket, socketBytes(socket), (send) => new AcceptorSide(credentials, rank, admits, send), HANDSHAKE_TIMEOUT_MS)
      .then(({ peer, rest }) => {
        const refusal = admits(peer);
        if (refusal !== undefined) throw new Error(refusal);
        fromLeft = adoptSocket(addon, socket, rest);
        fromLeft.then(onLeft!.resolve, onLeft!.reject);
      })
      .catch((error: Error) => {
        onRefused(`rank ${rank}: refused a ring connection from ${socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : "a local socket"}: ${error.message}`);
        socket.destroy();
      })
      .finally(() => loose.delete(socket));
  });
  return {
    server,
    async connect(table) {
      const to = table.find((e) => e.rank === right)!;
      const where = `${to.host}:${to.ringPort}`;
      const socket = net.connect({ port: to.ringPort!, host: to.host });
      loose.add(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", (e) => reject(new Error(`rank ${rank}: cannot open the ring connection to rank ${right} at ${where}: ${e.message}`)));
      });
      const { rest } = await authenticate(socket, socketBytes(socket), (send) => new DiallerSide(credentials, rank, right, send), HANDSHAKE_TIMEOUT_MS).catch((error: Error) => {
        throw new Error(`rank ${rank}: rank ${right}'s ring connection at ${where} failed the data handshake: ${error.message}`);
      });
      // the connection to the right carries only this rank's sends: nothing may follow its handshake
      const sendFd = await adoptSocket(addon, socket, rest);
      loose.delete(socket);
      const timeout = setTimeout(() => onLeft!.reject(new Error(`rank ${rank}: rank ${left} did not open its ring connection within ${HANDSHAKE_TIMEOUT_MS / 1000} s`)), HANDSHAKE_TIMEOUT_MS);
      try {
        return new NativeRing(addon, rank, size, sendFd, await leftArrived);
      } catch (error) {
        addon.close(sendFd);
        throw error;
      } finally {
        clearTimeout(timeout);
      }
    },
    dispose() {
      for (const socket of loose) socket.destroy();
      loose.clear();
    },
  };
}
