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
import * as path from "node:path";
import type { Socket } from "node:net";
import { addonSetting, loadAddon } from "./native-addons";
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

let loaded: TcpRingAddon | null | undefined;

/** The addon, or undefined where it was not built, cannot load, or DISTLAB_TCP_RING=js. */
export function tcpRingAddon(env: NodeJS.ProcessEnv = process.env): TcpRingAddon | undefined {
  if (loaded === undefined) {
    const setting = addonSetting(env, "DISTLAB_TCP_RING", ["native", "js"] as const);
    loaded = (setting !== "js" && loadAddon<TcpRingAddon>(TCP_RING_ADDON)) || null;
  }
  return loaded ?? undefined;
}

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
  /** resolves with the bytes it sent to the right and received from the left; rejects with why it failed */
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

  /** Whether a world allReduce of this array and reduce op can run here. */
  takes(x: CommArray, dtype: number, redop: number): boolean {
    return this.broken === undefined && NATIVE_DTYPES.has(dtype) && NATIVE_REDOPS.has(redop) && x.byteLength > 0;
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
          reject(headerMismatch ? new NativeRingMismatch(error) : new Error(error));
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
