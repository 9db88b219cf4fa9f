// Forming a TCP world: a small rendezvous server (run by the launcher)
// collects every rank's listening address and hands the full table back;
// then every rank connects to every other rank and accepts a connection
// from each. Every connection, the registrations at the rendezvous too,
// opens with the mutual challenge-response of data-handshake.ts over the
// world's secret (WorldCredentials), which names the dialling rank; a
// connection that fails it is closed and reported, and the world goes on.
// With `tls`, connections between hosts run inside TLS (data-tls.ts). A rank receives on the connections it opened (only those
// take the `onread` option, see tcp-transport.ts) and sends on those it
// accepted. Ranks on the same host connect over a Unix domain socket
// instead (the same-host fast path: no TCP/IP stack, same framing). Same
// host means the same hostname and the same kernel boot (machineId); a
// rank that still cannot reach the peer's socket file (another mount
// namespace: a container with its own /tmp) dials the peer's TCP address.
// A launcher wakes a rank blocked in a collective through `signal` (there
// is no shared cancel word between processes, so each rank cancels its
// own communicator) and ends the connections with closeTcpWorld. A world whose
// ranks span machines also opens a ring connection from each rank to the
// next, run by native code (tcp-native-ring.ts), when every rank offers one.
import { ResultPool, resultPoolOptions } from "./result-pool";
import { fullGc } from "./full-gc";
import { droppedResults } from "./dropped-results";
import { blockPopulator } from "./peer-memory";
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import * as os from "node:os";
import * as tls from "node:tls";
import * as path from "node:path";
import * as fs from "node:fs";
import { CommCore } from "./comm-core";
import { GroupCommunicator } from "./communicator";
import { AcceptorSide, DiallerSide, RENDEZVOUS_PEER, authenticate, socketBytes, type ByteSource, type WorldCredentials } from "./data-handshake";
import { dataTlsClientOptions, dataTlsServerOptions } from "./data-tls";
import { FrameReader, encodeFrame } from "../hosts/frames";
import { dialThroughRelay } from "../hosts/data-relay";
import { HANDSHAKE_TIMEOUT_MS } from "../hosts/handshake";
import { ReadBinding } from "./tcp-frames";
import { dialUnix, machineId } from "./same-host";
import { TcpTransport, type PeerSockets } from "./tcp-transport";
import { nativeRingSide, ringWanted, type NativeRing } from "./tcp-native-ring";
import type { CommOptions, Communicator } from "./types";

/**
 * A rank's row in the rendezvous table; `machine` is machineId() (absent from older ranks: they are
 * dialled over TCP); `ringPort`, where the rank offers a native ring connection (tcp-native-ring.ts).
 */
interface Entry { rank: number; host: string; port: number; hostname: string; machine?: string; unixPath?: string; ringPort?: number }

export interface Rendezvous {
  /** host:port the ranks pass as `rendezvous` */
  address: string;
  /** What each rank must be handed (over a trusted channel) to join: the world's id and secret. */
  credentials: WorldCredentials;
  /** Whether the world's connections between hosts run inside TLS (the ranks pass it as `tls`). */
  tls: boolean;
  close(): void;
}

export interface RendezvousOptions {
  /** address to listen on, default 127.0.0.1 */
  host?: string;
  /** default 0 (any free port) */
  port?: number;
  /** TLS on the registrations and on the world's connections between hosts (data-tls.ts) */
  tls?: boolean;
  /** Hears each refused connection: the peer's address and why. Default: a line on stderr. */
  onRefused?: (line: string) => void;
  /** The world's id and secret when the kernel made them elsewhere (an agent's rendezvous); default fresh ones. */
  credentials?: WorldCredentials;
}

/** Longest registration the rendezvous reads, bytes (it comes only after the rank authenticated). */
const REGISTRATION_MAX_BYTES = 64 * 1024;
/** Longest table a rank reads from the authenticated rendezvous, bytes. */
const TABLE_MAX_BYTES = 64 * 1024 * 1024;

/** A fresh world: its id and secret (data-handshake.ts). */
export function freshWorldCredentials(): WorldCredentials {
  return { world: randomBytes(8).toString("hex"), secret: randomBytes(32) };
}

function logToStderr(line: string): void {
  process.stderr.write(`distlab: ${line}\n`);
}

function peerOf(socket: net.Socket): string {
  return socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : "a local socket";
}

/** Starts the rendezvous for a world of `size` ranks, with fresh credentials. */
export function startTcpRendezvous(size: number, options: RendezvousOptions = {}): Promise<Rendezvous> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`startTcpRendezvous: size must be a positive integer, got ${size}`);
  const { host = "127.0.0.1", port = 0, tls: useTls = false, onRefused = logToStderr } = options;
  const credentials = options.credentials ?? freshWorldCredentials();
  const entries = new Map<number, { entry: Entry; socket: net.Socket }>();
  /** connections of ranks still waiting for the table; closing the rendezvous ends them (their join fails) */
  const waiting = new Set<net.Socket>();
  const refuse = (socket: net.Socket, reason: string) => {
    onRefused(`rendezvous: refused ${peerOf(socket)}: ${reason}`);
    socket.destroy();
  };
  const admits = (from: number) =>
    from < 0 || from >= size ? `rank ${from} is out of [0, ${size - 1}]` : entries.has(from) ? `rank ${from} has already joined` : undefined;
  const serve = (socket: net.Socket) => {
    socket.on("error", () => undefined);
    waiting.add(socket);
    socket.on("close", () => waiting.delete(socket));
    authenticate(socket, socketBytes(socket), (send) => new AcceptorSide(credentials, RENDEZVOUS_PEER, admits, send), HANDSHAKE_TIMEOUT_MS).then(
      ({ peer, rest }) => {
        // The registration: one frame of JSON, read only now that the rank has proved it belongs.
        const reader = new FrameReader(REGISTRATION_MAX_BYTES);
        const take = (chunk: Buffer) => {
          let frames: Buffer[];
          try {
            frames = reader.push(chunk);
          } catch (error) {
            return refuse(socket, `rank ${peer}: ${(error as Error).message}`);
          }
          if (frames.length === 0) return;
          socket.off("data", take);
          let entry: Entry;
          try {
            entry = JSON.parse(frames[0]!.toString("utf8")) as Entry;
          } catch {
            return refuse(socket, `rank ${peer}: the registration is not JSON`);
          }
          if (typeof entry !== "object" || entry === null || entry.rank !== peer || typeof entry.host !== "string" || !Number.isInteger(entry.port)) {
            return refuse(socket, `rank ${peer}: the registration is not { rank: ${peer}, host, port, ... }`);
          }
          if (entries.has(peer)) return refuse(socket, `rank ${peer} has already joined`);
          entries.set(peer, { entry, socket });
          if (entries.size === size) {
            const table = [...entries.values()].map((e) => e.entry).sort((a, b) => a.rank - b.rank);
            for (const { socket: s } of entries.values()) s.end(encodeFrame(Buffer.from(JSON.stringify({ table }))));
          }
        };
        socket.on("data", take);
        if (rest.byteLength > 0) take(rest);
      },
      (error: Error) => refuse(socket, error.message),
    );
  };
  const server = useTls ? tls.createServer(dataTlsServerOptions(credentials.secret), serve) : net.createServer(serve);
  if (useTls) server.on("tlsClientError", (error, socket) => onRefused(`rendezvous: refused ${peerOf(socket)}: TLS handshake failed (${error.message.split("\n")[0]})`));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const a = server.address() as net.AddressInfo;
      const close = () => {
        server.close();
        for (const socket of waiting) socket.destroy();
      };
      resolve({ address: `${host}:${a.port}`, credentials, tls: useTls, close });
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
  /** The world's id and secret, from the rendezvous's starter: every connection proves it holds them. */
  credentials: WorldCredentials;
  /** TLS on the connections to other hosts and to the rendezvous (Rendezvous.tls); Unix sockets never. */
  tls?: boolean;
  /** Hears each refused data connection: the peer's address and why. Default: a line on stderr. */
  onRefused?: (line: string) => void;
  /**
   * `--data-via ssh` (hosts/data-relay.ts): the Unix socket that leads to the kernel's relay; the
   * connections to other hosts and to the rendezvous go through it instead of straight there.
   */
  relay?: string;
  /**
   * Aborting it while the rank joins gives the join up (closing what it opened). Aborting it
   * later ends every wait of this rank's communicator and its groups, now and later, with a
   * CommCancelledError carrying the abort reason: how a launcher wakes a rank blocked in a
   * collective when a peer failed or the user interrupted. The connections stay open until
   * closeTcpWorld.
   */
  signal?: AbortSignal;
  /**
   * The native ring connections (tcp-native-ring.ts): true opens them on one machine too (tests
   * and benchmarks), false never; by default they are opened when the ranks span machines. Either
   * way only where every rank offers one (the addon built, no TLS, no relay).
   */
  nativeRing?: boolean;
}

/** The transport under each communicator connectTcpWorld returned, for closeTcpWorld and worldCiphers. */
const tcpTransports = new WeakMap<Communicator, TcpTransport>();

/** Per peer rank, the TLS cipher suite of the connection its frames arrive on, or "none". */
export function worldCiphers(comm: Communicator): Map<number, string> {
  return tcpTransports.get(comm)?.ciphers() ?? new Map();
}

/** Joins the world and returns this rank's world communicator. */
export async function connectTcpWorld(options: TcpWorldOptions): Promise<Communicator> {
  const { rank, size } = options;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`connectTcpWorld: size must be a positive integer, got ${size}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new RangeError(`connectTcpWorld: rank must be in [0, ${size - 1}], got ${rank}`);
  const [rvHost, rvPort] = splitAddress(options.rendezvous);
  const host = options.host ?? "127.0.0.1";
  const useUnix = options.unixSockets !== false && process.platform !== "win32";
  const unixPath = useUnix ? path.join(os.tmpdir(), `distlab-${process.pid}-${rank}-${Date.now()}.sock`) : undefined;
  const { credentials, onRefused = logToStderr } = options;
  const useTls = options.tls === true;
  const relay = options.relay;
  if (relay !== undefined && useTls) throw new RangeError("connectTcpWorld: a relayed world (relay) runs without TLS: ssh encrypts it");
  const sendSockets = new Map<number, net.Socket>();
  const expected = size - 1; // every peer connects here
  let onAllAccepted = () => {};
  const accepted = new Promise<void>((r) => (onAllAccepted = r));
  if (expected === 0) onAllAccepted();
  const admits = (from: number) =>
    from < 0 || from >= size || from === rank ? `rank ${from} is not a peer of rank ${rank} in a world of ${size}` : sendSockets.has(from) ? `rank ${from} is already connected` : undefined;
  /** Sockets still authenticating: a join that fails lets go of them too. */
  const authenticating = new Set<net.Socket>();
  const accept = (socket: net.Socket) => {
    socket.on("error", () => undefined);
    authenticating.add(socket);
    authenticate(socket, socketBytes(socket), (send) => new AcceptorSide(credentials, rank, admits, send), HANDSHAKE_TIMEOUT_MS)
      .then(({ peer }) => {
        // two connections claiming one rank can both pass admits() while they authenticate; the first wins
        const refusal = admits(peer);
        if (refusal !== undefined) throw new Error(refusal);
        sendSockets.set(peer, socket);
        if (sendSockets.size === expected) onAllAccepted();
      })
      .catch((error: Error) => {
        onRefused(`rank ${rank}: refused a data connection from ${peerOf(socket)}: ${error.message}`);
        socket.destroy();
      })
      .finally(() => authenticating.delete(socket));
  };
  const tcpServer = useTls ? tls.createServer(dataTlsServerOptions(credentials.secret), accept) : net.createServer(accept);
  if (useTls) tcpServer.on("tlsClientError", (error, socket) => onRefused(`rank ${rank}: refused a data connection from ${peerOf(socket)}: TLS handshake failed (${error.message.split("\n")[0]})`));
  const unixServer = unixPath ? net.createServer(accept) : undefined;
  const ring = nativeRingSide(rank, size, credentials, options.nativeRing === false || useTls || relay !== undefined ? false : options.nativeRing, onRefused);
  const opened = new Map<number, Omit<PeerSockets, "send">>();
  let nativeRing: NativeRing | undefined;
  const stopListening = () => {
    tcpServer.close();
    ring?.server.close();
    unixServer?.close();
    if (unixPath) fs.rmSync(unixPath, { force: true });
  };
  // A join that fails or is cancelled half way lets go of everything it opened.
  const cancelled = untilAborted(options.signal, `rank ${rank}: joining the world was cancelled`);
  try {
    await new Promise<void>((r) => tcpServer.listen(0, host, r));
    if (unixServer && unixPath) await new Promise<void>((r) => unixServer.listen(unixPath, r));
    if (ring) await new Promise<void>((r) => ring.server.listen(0, host, r));
    const ringPort = ring ? (ring.server.address() as net.AddressInfo).port : undefined;
    const me: Entry = { rank, host, port: (tcpServer.address() as net.AddressInfo).port, hostname: os.hostname(), machine: machineId(), unixPath, ringPort };
    const table = await Promise.race([exchangeWithRendezvous(rvHost, rvPort, me, credentials, useTls, relay), cancelled.promise]);
    for (const peer of table.filter((e) => e.rank !== rank)) {
      const read = new ReadBinding();
      const sameHost = useUnix && peer.unixPath !== undefined && peer.machine !== undefined && peer.machine === me.machine;
      const unix = sameHost
        ? await dialUnix(peer.unixPath!, read, cancelled.promise).catch((e: NodeJS.ErrnoException) => {
            throw e.code ? new Error(`rank ${rank}: cannot connect to rank ${peer.rank} at ${peer.unixPath}: ${e.message}`) : e;
          })
        : undefined;
      if (unix instanceof Error) {
        onRefused(`rank ${rank}: rank ${peer.rank} shares this machine but its socket ${peer.unixPath} cannot be reached from here (${unix.message}); dialling ${peer.host}:${peer.port} over TCP`);
      }
      const dialled = unix instanceof Error ? undefined : unix;
      const viaUnix = dialled !== undefined;
      const encrypted = useTls && !viaUnix;
      const where = viaUnix ? peer.unixPath! : `${peer.host}:${peer.port}${relay ? ` (through the relay ${relay})` : ""}`;
      const socket: net.Socket = dialled
        ?? (relay
          ? dialThroughRelay(relay, peer.host, peer.port, read.onread)
          : encrypted
          ? tls.connect({ port: peer.port, host: peer.host, ...dataTlsClientOptions(credentials.secret) })
          // a TLS socket's plaintext arrives as 'data', not through onread
          : net.connect({ port: peer.port, host: peer.host, onread: read.onread }));
      if (encrypted) socket.on("data", (chunk: Buffer) => read.push(chunk));
      opened.set(peer.rank, { recv: socket, read });
      if (!viaUnix) {
        await new Promise<void>((resolve, reject) => {
          socket.once(encrypted ? "secureConnect" : "connect", resolve);
          socket.once("error", (e) => reject(new Error(`rank ${rank}: cannot connect to rank ${peer.rank} at ${where}: ${e.message}`)));
        });
      }
      const source: ByteSource = {
        listen: (take) => {
          read.intercept(take);
          return () => read.release(new Uint8Array(0));
        },
      };
      const { rest } = await authenticate(socket, source, (send) => new DiallerSide(credentials, rank, peer.rank, send), HANDSHAKE_TIMEOUT_MS).catch((error: Error) => {
        throw new Error(`rank ${rank}: rank ${peer.rank} at ${where} failed the data handshake: ${error.message}`);
      });
      read.release(rest);
    }
    await Promise.race([accepted, cancelled.promise]);
    if (ring && ringWanted(table, options.nativeRing)) nativeRing = await Promise.race([ring.connect(table), cancelled.promise]);
  } catch (error) {
    nativeRing?.close();
    ring?.dispose();
    for (const { recv } of opened.values()) recv.destroy();
    for (const socket of sendSockets.values()) socket.destroy();
    for (const socket of authenticating) socket.destroy();
    throw error;
  } finally {
    cancelled.dispose();
    stopListening();
  }
  const peers = new Map<number, PeerSockets>();
  for (const [peer, sockets] of opened) peers.set(peer, { ...sockets, send: sendSockets.get(peer)! });
  ring?.dispose();
  const tcp = new TcpTransport(rank, size, peers, options.wire, nativeRing);
  const { signal } = options;
  if (signal) {
    const cancel = () => tcp.cancel(String(signal.reason ?? "cancelled"));
    if (signal.aborted) cancel();
    else signal.addEventListener("abort", cancel, { once: true });
  }
  const core = new CommCore(tcp, options);
  // results without `out` come from a pool, as in a thread world (result-pool.ts): a fresh 64 MiB
  // array a call costs more than the ring between two processes
  core.results = new ResultPool(resultPoolOptions(size, options.resultPool), { collect: fullGc(), dropped: droppedResults(), populate: blockPopulator() });
  const comm = new GroupCommunicator(core, Array.from({ length: size }, (_, i) => i), 0, "world");
  tcpTransports.set(comm, tcp);
  return comm;
}

/** Closes the connections of a world communicator from connectTcpWorld (its peers see them close). */
export async function closeTcpWorld(comm: Communicator): Promise<void> {
  await tcpTransports.get(comm)?.close();
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

/** Authenticates to the rendezvous, registers `me` (one frame) and reads the table (one frame). */
async function exchangeWithRendezvous(host: string, port: number, me: Entry, credentials: WorldCredentials, useTls: boolean, relay?: string): Promise<Entry[]> {
  const socket: net.Socket = relay ? dialThroughRelay(relay, host, port) : useTls ? tls.connect({ port, host, ...dataTlsClientOptions(credentials.secret) }) : net.connect(port, host);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once(useTls ? "secureConnect" : "connect", resolve);
      socket.once("error", (e: Error) => reject(new Error(`rank ${me.rank}: rendezvous at ${host}:${port} unreachable: ${e.message}`)));
    });
    const { rest } = await authenticate(socket, socketBytes(socket), (send) => new DiallerSide(credentials, me.rank, RENDEZVOUS_PEER, send), HANDSHAKE_TIMEOUT_MS).catch((error: Error) => {
      throw new Error(`rank ${me.rank}: the rendezvous at ${host}:${port} failed the handshake: ${error.message}`);
    });
    socket.write(encodeFrame(Buffer.from(JSON.stringify(me))));
    return await new Promise<Entry[]>((resolve, reject) => {
      const reader = new FrameReader(TABLE_MAX_BYTES);
      const take = (chunk: Buffer) => {
        try {
          const [frame] = reader.push(chunk);
          if (frame) resolve((JSON.parse(frame.toString("utf8")) as { table: Entry[] }).table);
        } catch (error) {
          reject(new Error(`rank ${me.rank}: unreadable table from the rendezvous: ${(error as Error).message}`));
        }
      };
      socket.on("data", take);
      socket.on("error", (e: Error) => reject(new Error(`rank ${me.rank}: rendezvous at ${host}:${port}: ${e.message}`)));
      socket.on("close", () => reject(new Error(`rank ${me.rank}: the rendezvous closed without a table (a rank failed to join, or the group was closed)`)));
      if (rest.byteLength > 0) take(rest);
    });
  } finally {
    socket.destroy();
  }
}

