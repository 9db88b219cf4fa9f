// Forming a TCP world: a small rendezvous server (run by the launcher)
// collects every rank's listening address and hands the full table back;
// then every rank connects to every other rank and accepts a connection
// from each, each connection opening with a 4-byte hello naming the
// connecting rank. A rank receives on the connections it opened (only those
// take the `onread` option, see tcp-transport.ts) and sends on those it
// accepted. Ranks on the same host connect over a Unix domain socket
// instead (the same-host fast path: no TCP/IP stack, same framing).
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { CommCore } from "./comm-core";
import { GroupCommunicator } from "./communicator";
import { ReadBinding } from "./tcp-frames";
import { TcpTransport, type PeerSockets } from "./tcp-transport";
import type { CommOptions, Communicator } from "./types";

interface Entry { rank: number; host: string; port: number; hostname: string; unixPath?: string }

export interface Rendezvous {
  /** host:port the ranks pass as `rendezvous` */
  address: string;
  close(): void;
}

/** Starts the rendezvous for a world of `size` ranks. */
export function startTcpRendezvous(size: number, host = "127.0.0.1", port = 0): Promise<Rendezvous> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`startTcpRendezvous: size must be a positive integer, got ${size}`);
  const entries = new Map<number, { entry: Entry; socket: net.Socket }>();
  const server = net.createServer((socket) => {
    let text = "";
    socket.on("data", (chunk) => {
      text += chunk.toString();
      if (!text.includes("\n")) return;
      const entry = JSON.parse(text.split("\n")[0]) as Entry;
      if (!Number.isInteger(entry.rank) || entry.rank < 0 || entry.rank >= size || entries.has(entry.rank)) {
        socket.end(JSON.stringify({ error: `rendezvous: rank ${entry.rank} is out of [0, ${size - 1}] or already joined` }) + "\n");
        return;
      }
      entries.set(entry.rank, { entry, socket });
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
      resolve({ address: `${host}:${a.port}`, close: () => server.close() });
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
  await new Promise<void>((r) => tcpServer.listen(0, host, r));
  const unixServer = unixPath ? net.createServer(accept) : undefined;
  if (unixServer && unixPath) await new Promise<void>((r) => unixServer.listen(unixPath, r));
  const me: Entry = { rank, host, port: (tcpServer.address() as net.AddressInfo).port, hostname: os.hostname(), unixPath };
  const table = await exchangeWithRendezvous(rvHost, rvPort, me);
  const opened = new Map<number, Omit<PeerSockets, "send">>();
  for (const peer of table.filter((e) => e.rank !== rank)) {
    const sameHost = peer.hostname === me.hostname && peer.unixPath && useUnix;
    const read = new ReadBinding();
    const where = sameHost ? { path: peer.unixPath! } : { port: peer.port, host: peer.host };
    const socket = net.connect({ ...where, onread: read.onread });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", (e) => reject(new Error(`rank ${rank}: cannot connect to rank ${peer.rank} at ${sameHost ? peer.unixPath : `${peer.host}:${peer.port}`}: ${e.message}`)));
    });
    const hello = Buffer.alloc(4);
    hello.writeInt32LE(rank, 0);
    socket.write(hello);
    opened.set(peer.rank, { recv: socket, read });
  }
  await accepted;
  tcpServer.close();
  unixServer?.close();
  if (unixPath) fs.rmSync(unixPath, { force: true });
  const peers = new Map<number, PeerSockets>();
  for (const [peer, sockets] of opened) peers.set(peer, { ...sockets, send: sendSockets.get(peer)! });
  const transport = new TcpTransport(rank, size, peers);
  const core = new CommCore(transport, options);
  return new GroupCommunicator(core, Array.from({ length: size }, (_, i) => i), 0, "world");
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
