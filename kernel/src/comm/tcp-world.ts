// Forming a TCP world: a small rendezvous server (run by the launcher)
// collects every rank's listening address and hands the full table back;
// then every rank connects to every other rank and accepts a connection
// from each, each connection opening with a 4-byte hello naming the
// connecting rank. A rank receives on the connections it opened (only those
// take the `onread` option, see tcp-transport.ts) and sends on those it
// accepted. Ranks on the same host connect over a Unix domain socket
// instead (the same-host fast path: no TCP/IP stack, same framing).
// A launcher wakes a rank blocked in a collective through `signal` (there
// is no shared cancel word between processes, so each rank cancels its
// own communicator) and ends the connections with closeTcpWorld.
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { CommCore } from "./comm-core";
import { CommCancelledError } from "./comm-errors";
import { GroupCommunicator } from "./communicator";
import { ReadBinding } from "./tcp-frames";
import { TcpTransport, type PeerSockets } from "./tcp-transport";
import type { CallContext, RecvSpec, SendSpec, Transport } from "./transport";
import type { CommOptions, Communicator } from "./types";

interface Entry { rank: number; host: string; port: number; hostname: string; unixPath?: string }

export interface Rendezvous {
  /** host:port the ranks pass as `rendezvous` */
  address: string;
  close(): void;
}

/** Longest registration line the rendezvous reads, characters. */
const REGISTRATION_MAX_CHARS = 64 * 1024;

/** Starts the rendezvous for a world of `size` ranks. */
export function startTcpRendezvous(size: number, host = "127.0.0.1", port = 0): Promise<Rendezvous> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`startTcpRendezvous: size must be a positive integer, got ${size}`);
  const entries = new Map<number, { entry: Entry; socket: net.Socket }>();
  /** connections of ranks still waiting for the table; closing the rendezvous ends them (their join fails) */
  const waiting = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.on("close", () => waiting.delete(socket));
    let text = "";
    let registered = false;
    socket.on("data", (chunk) => {
      if (registered) return;
      text += chunk.toString();
      // A registration is one short JSON line; anything longer or unreadable is not a rank of ours.
      if (!text.includes("\n")) {
        if (text.length > REGISTRATION_MAX_CHARS) socket.destroy();
        return;
      }
      registered = true;
      let entry: Entry;
      try {
        entry = JSON.parse(text.split("\n")[0]!) as Entry;
      } catch {
        socket.end(JSON.stringify({ error: "rendezvous: the registration is not a JSON line" }) + "\n");
        return;
      }
      if (typeof entry !== "object" || entry === null || !Number.isInteger(entry.rank) || entry.rank < 0 || entry.rank >= size || entries.has(entry.rank)) {
        socket.end(JSON.stringify({ error: `rendezvous: rank ${String(entry?.rank)} is out of [0, ${size - 1}] or already joined` }) + "\n");
        return;
      }
      entries.set(entry.rank, { entry, socket });
      waiting.add(socket);
      if (entries.size === size) {
        const table = [...entries.values()].map((e) => e.entry).sort((a, b) => a.rank - b.rank);
        for (const { socket: s } of entries.values()) s.end(JSON.stringify({ table }) + "\n");
      }
    });
    socket.on("error", () => undefined);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const a = server.address() as net.AddressInfo;
      const close = () => {
        server.close();
        for (const socket of waiting) socket.destroy();
      };
      resolve({ address: `${host}:${a.port}`, close });
    });
  });
}

export interface TcpWorldOptions extends CommOptions {
  rank: number;
  size: number;
  /** host:port of startTcpRendezvous */
  rendezvous: string;
  /** address this rank listens on for its peers; default 127.0.0.1 */
  host?: string;
  /** false forces TCP between ranks of one host (the benchmark measures both) */
  unixSockets?: boolean;
  /**
   * Aborting it while the rank joins gives the join up (closing what it opened). Aborting it
   * later ends every wait of this rank's communicator and its groups, now and later, with a
   * CommCancelledError carrying the abort reason: how a launcher wakes a rank blocked in a
   * collective when a peer failed or the user interrupted. The connections stay open until
   * closeTcpWorld.
   */
  signal?: AbortSignal;
}

/** The transport under each communicator connectTcpWorld returned, for closeTcpWorld. */
const transports = new WeakMap<Communicator, Transport>();

/** Joins the world and returns this rank's world communicator. */
export async function connectTcpWorld(options: TcpWorldOptions): Promise<Communicator> {
  const { rank, size } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`connectTcpWorld: size must be a positive integer, got ${size}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new RangeError(`connectTcpWorld: rank must be in [0, ${size - 1}], got ${rank}`);
  const [rvHost, rvPort] = splitAddress(options.rendezvous);
  const host = options.host ?? "127.0.0.1";
  const useUnix = options.unixSockets !== false && process.platform !== "win32";
  const unixPath = useUnix ? path.join(os.tmpdir(), `distlab-${process.pid}-${rank}-${Date.now()}.sock`) : undefined;
  const sendSockets = new Map<number, net.Socket>();
  const expected = size - 1; // every peer connects here
  let onAllAccepted = () => {};
  const accepted = new Promise<void>((r) => (onAllAccepted = r));
  if (expected === 0) onAllAccepted();
  const accept = (socket: net.Socket) => {
    socket.once("readable", function first() {
      const hello = socket.read(4) as Buffer | null;
      if (!hello) return socket.once("readable", first);
      sendSockets.set(hello.readInt32LE(0), socket);
      if (sendSockets.size === expected) onAllAccepted();
    });
  };
  const tcpServer = net.createServer(accept);
  const unixServer = unixPath ? net.createServer(accept) : undefined;
  const opened = new Map<number, Omit<PeerSockets, "send">>();
  const stopListening = () => {
    tcpServer.close();
    unixServer?.close();
    if (unixPath) fs.rmSync(unixPath, { force: true });
  };
  // A join that fails or is cancelled half way lets go of everything it opened.
  const cancelled = untilAborted(options.signal, `rank ${rank}: joining the world was cancelled`);
  try {
    await new Promise<void>((r) => tcpServer.listen(0, host, r));
    if (unixServer && unixPath) await new Promise<void>((r) => unixServer.listen(unixPath, r));
    const me: Entry = { rank, host, port: (tcpServer.address() as net.AddressInfo).port, hostname: os.hostname(), unixPath };
    const table = await Promise.race([exchangeWithRendezvous(rvHost, rvPort, me), cancelled.promise]);
    for (const peer of table.filter((e) => e.rank !== rank)) {
      const sameHost = peer.hostname === me.hostname && peer.unixPath && useUnix;
      const read = new ReadBinding();
      const where = sameHost ? { path: peer.unixPath! } : { port: peer.port, host: peer.host };
      const socket = net.connect({ ...where, onread: read.onread });
      opened.set(peer.rank, { recv: socket, read });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", (e) => reject(new Error(`rank ${rank}: cannot connect to rank ${peer.rank} at ${sameHost ? peer.unixPath : `${peer.host}:${peer.port}`}: ${e.message}`)));
      });
      const hello = Buffer.alloc(4);
      hello.writeInt32LE(rank, 0);
      socket.write(hello);
    }
    await Promise.race([accepted, cancelled.promise]);
  } catch (error) {
    for (const { recv } of opened.values()) recv.destroy();
    for (const socket of sendSockets.values()) socket.destroy();
    throw error;
  } finally {
    cancelled.dispose();
    stopListening();
  }
  const peers = new Map<number, PeerSockets>();
  for (const [peer, sockets] of opened) peers.set(peer, { ...sockets, send: sendSockets.get(peer)! });
  const tcp = new TcpTransport(rank, size, peers, options.wire);
  const transport = options.signal ? new CancellableTransport(tcp, options.signal) : tcp;
  const core = new CommCore(transport, options);
  const comm = new GroupCommunicator(core, Array.from({ length: size }, (_, i) => i), 0, "world");
  transports.set(comm, transport);
  return comm;
}

/** Closes the connections of a world communicator from connectTcpWorld (its peers see them close). */
export async function closeTcpWorld(comm: Communicator): Promise<void> {
  await transports.get(comm)?.close();
}

/**
 * A transport whose waits end when `signal` aborts. The frames a
 * cancelled call leaves behind stay unread: a cancelled world is not used
 * again, only closed.
 */
class CancellableTransport implements Transport {
  readonly kind = "tcp";
  readonly rank: number;
  readonly size: number;
  readonly wire: Transport["wire"];

  constructor(
    private readonly inner: Transport,
    private readonly signal: AbortSignal,
  ) {
    this.rank = inner.rank;
    this.size = inner.size;
    this.wire = inner.wire;
  }

  enter(call: CallContext): void {
    this.inner.enter(call);
  }

  exchange(call: CallContext, sends: SendSpec[], recvs: RecvSpec[]): Promise<void> {
    return this.untilCancelled(call, () => this.inner.exchange(call, sends, recvs));
  }

  sendUser(call: CallContext, spec: SendSpec): Promise<void> {
    return this.untilCancelled(call, () => this.inner.sendUser(call, spec));
  }

  recvUser(call: CallContext, spec: RecvSpec): Promise<void> {
    return this.untilCancelled(call, () => this.inner.recvUser(call, spec));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private untilCancelled(call: CallContext, run: () => Promise<void>): Promise<void> {
    const cancelled = () => new CommCancelledError(this.rank, call.label, String(this.signal.reason ?? "cancelled"));
    if (this.signal.aborted) return Promise.reject(cancelled());
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(cancelled());
      this.signal.addEventListener("abort", onAbort, { once: true });
      run()
        .then(resolve, reject)
        .finally(() => this.signal.removeEventListener("abort", onAbort));
    });
  }
}

/** A promise that rejects when `signal` aborts (never without one); dispose() stops listening. */
function untilAborted(signal: AbortSignal | undefined, message: string): { promise: Promise<never>; dispose(): void } {
  if (!signal) return { promise: new Promise<never>(() => undefined), dispose: () => undefined };
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Error(`${message}: ${String(signal.reason)}`));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  promise.catch(() => undefined);
  return { promise, dispose: () => signal.removeEventListener("abort", onAbort) };
}

function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(":");
  const port = Number(address.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port <= 0) throw new TypeError(`rendezvous must be "host:port", got ${JSON.stringify(address)}`);
  return [address.slice(0, at), port];
}

function exchangeWithRendezvous(host: string, port: number, me: Entry): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket = net.connect(port, host, () => socket.write(JSON.stringify(me) + "\n"));
    let text = "";
    socket.on("data", (c: Buffer) => (text += c.toString()));
    socket.on("error", (e: Error) => reject(new Error(`rank ${me.rank}: rendezvous at ${host}:${port} unreachable: ${e.message}`)));
    socket.on("end", () => {
      const reply = JSON.parse(text.split("\n")[0] || "{}") as { table?: Entry[]; error?: string };
      if (reply.table) resolve(reply.table);
      else reject(new Error(reply.error ?? `rank ${me.rank}: rendezvous closed without a table`));
    });
  });
}
