/**
 * `--data-via ssh`: the ranks' data connections (and their registrations at
 * the rendezvous) ride the ssh connections the kernel launched the agents
 * through, for compute hosts that cannot reach each other at all. Each
 * host's ssh session carries two Unix-socket forwards (OpenSSH streamlocal
 * forwarding, made when the session starts, so no port is guessed):
 *
 *   host A: rank dials A's relay socket ──ssh -R──▶ kernel relay (this file)
 *   kernel relay ──ssh -L──▶ host B's inbound socket, served by B's agent
 *   B's agent ──TCP──▶ the rank or rendezvous listening on B
 *
 * A relayed connection opens with one line naming where it goes,
 * `host:port\n` (the address the target registered: the address the kernel
 * reached that host at); every byte after it is the connection's own (the
 * data handshake of data-handshake.ts, then frames), piped untouched. The
 * relay and the agent only route; authentication stays end to end between
 * the ranks, and ssh encrypts every hop. The line is hand-written, not a
 * SOCKS dialect, because both ends are ours and it is one line.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Environment variable an agent sets on its ranks: the Unix socket on their host that leads to the kernel's relay. */
export const DATA_RELAY_ENV = "DISTLAB_DATA_RELAY";

/** Longest routing line read, bytes. */
const ROUTE_LINE_MAX = 512;

/** Rank side: a connection to `host:port` through the relay socket at `relayPath`; `onread` as net.connect's. */
export function dialThroughRelay(relayPath: string, host: string, port: number, onread?: net.OnReadOpts): net.Socket {
  const socket = net.connect({ path: relayPath, ...(onread ? { onread } : {}) });
  socket.write(`${host}:${port}\n`);
  return socket;
}

/** Reads the routing line of `socket`; resolves with its target and the bytes that came after it. */
function readRoute(socket: net.Socket): Promise<{ host: string; port: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let held = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      held = Buffer.concat([held, chunk]);
      const end = held.indexOf(0x0a);
      if (end < 0 && held.length <= ROUTE_LINE_MAX) return;
      socket.off("data", onData);
      socket.pause();
      const line = end < 0 ? "" : held.subarray(0, end).toString("utf8");
      const match = /^(.+):(\d{1,5})$/.exec(line);
      if (!match) return reject(new Error(`not a relay line (host:port): ${JSON.stringify(line.slice(0, 80))}`));
      resolve({ host: match[1]!, port: Number(match[2]), rest: held.subarray(end + 1) });
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error("closed before its relay line")));
  });
}

/** Pipes `a` and `b` both ways; either end closing closes the other. `first` goes to b before a's bytes. */
function splice(a: net.Socket, b: net.Socket, first: Buffer): void {
  if (first.length > 0) b.write(first);
  a.pipe(b);
  b.pipe(a);
  a.resume();
  const end = () => {
    a.destroy();
    b.destroy();
  };
  for (const socket of [a, b]) {
    socket.on("error", end);
    socket.once("close", end);
  }
}

/**
 * Agent side: serves the inbound socket at `path` (the far end of the kernel's ssh -L): each
 * connection names a port on this host's address `host` and is piped to it. Only `host` is dialled,
 * so the relay reaches the ranks' and the rendezvous's listeners and nothing else on the host.
 */
export function serveInbound(path: string, host: string, log: (line: string) => void): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    readRoute(socket).then(
      (route) => {
        if (route.host !== host) {
          log(`data relay: refused a connection to ${route.host}:${route.port}: not this host's address ${host}`);
          return socket.destroy();
        }
        const onward = net.connect({ host, port: route.port });
        onward.once("connect", () => splice(socket, onward, route.rest));
        onward.once("error", (error) => {
          log(`data relay: cannot reach ${host}:${route.port}: ${error.message}`);
          socket.destroy();
        });
      },
      (error: Error) => {
        log(`data relay: ${error.message}`);
        socket.destroy();
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}

/**
 * Kernel side: the relay every host's ranks reach through their ssh -R forward. Routes each
 * connection by its target host to the inbound forward (ssh -L) of the host reached at that
 * address; connections to an address no host has are refused and logged.
 */
export class KernelDataRelay {
  private readonly inbound = new Map<string, string>();

  private constructor(
    /** a directory of this kernel's own for its sockets (mode 700, as mkdtemp makes it) */
    private readonly dir: string,
    private readonly server: net.Server,
    private readonly log: (line: string) => void,
  ) {}

  static async start(log: (line: string) => void): Promise<KernelDataRelay> {
    const dir = mkdtempSync(join(tmpdir(), "dl-relay-"));
    let relay: KernelDataRelay | undefined;
    const server = net.createServer((socket) => relay?.route(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(join(dir, "relay.sock"), () => resolve());
    });
    relay = new KernelDataRelay(dir, server, log);
    return relay;
  }

  /** Fresh socket paths for one host's ssh session (a redialled host gets new ones: ssh will not bind over a stale socket). */
  forwards(): { remoteRelay: string; kernelRelay: string; kernelInbound: string; remoteInbound: string } {
    const id = randomBytes(6).toString("hex");
    return {
      remoteRelay: `/tmp/dl-${id}-relay.sock`,
      kernelRelay: join(this.dir, "relay.sock"),
      kernelInbound: join(this.dir, `${id}-in.sock`),
      remoteInbound: `/tmp/dl-${id}-in.sock`,
    };
  }

  /** Connections to `address` (where the kernel reached a host's agent) go to `inboundPath` (the kernel's end of its ssh -L). */
  addHost(address: string, inboundPath: string): void {
    this.inbound.set(address, inboundPath);
  }

  private route(socket: net.Socket): void {
    socket.on("error", () => undefined);
    readRoute(socket).then(
      (route) => {
        const path = this.inbound.get(route.host);
        if (path === undefined) {
          this.log(`--data-via ssh: refused a relayed connection to ${route.host}:${route.port}: no host of this group is reached at ${route.host}`);
          return socket.destroy();
        }
        const onward = net.connect({ path });
        onward.once("connect", () => {
          onward.write(`${route.host}:${route.port}\n`);
          splice(socket, onward, route.rest);
        });
        onward.once("error", (error) => {
          this.log(`--data-via ssh: cannot reach ${route.host} through its ssh forward: ${error.message}`);
          socket.destroy();
        });
      },
      (error: Error) => {
        this.log(`--data-via ssh: ${error.message}`);
        socket.destroy();
      },
    );
  }

  close(): void {
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
