/**
 * `distlab agent`: runs on a host and starts rank processes for kernels
 * that prove they hold the agent's token (handshake.ts). Each rank is the
 * same child process as one of `--backend processes` (cluster/rank-side/process-entry.ts, its
 * IPC channel and lifeline); the agent relays its tasks, results, events and
 * output over the kernel's control connection (control.ts), and the ranks
 * join their TCP world among themselves, listening on the address the
 * kernel reached this agent at.
 *
 * One connection's troubles (a wrong token, a malformed or oversized frame,
 * a handshake that never ends) close that connection only. When a kernel's
 * connection closes, its ranks are stopped. Every accepted and refused
 * connection is logged with the peer's address and the reason; the token
 * never is.
 */
import type { ChildProcess } from "node:child_process";
import * as net from "node:net";
import * as tls from "node:tls";
import { hostname } from "node:os";
import { rmSync } from "node:fs";
import { Duplex, type Readable } from "node:stream";
import { startRankProcess } from "./agent-rank-process";
import { FrameReader, encodeFrame } from "./frames";
import { HandshakeGate } from "./handshake-gate";
import { readControl, sendControl, type ToAgent } from "./control";
import { AgentRendezvous } from "./agent-rendezvous";
import { AGENT_PROTOCOL, HANDSHAKE_TIMEOUT_MS, jsonFrame, type AgentAnnouncement } from "./handshake";
import { MIN_TOKEN_CHARS } from "./token";
import { missingGpu } from "./gpu-check";
import { serveInbound } from "./data-relay";
import { epochMicros, testClockSkewUs } from "../trace/clock";

export interface AgentOptions {
  host: string;
  port: number;
  token: Buffer;
  /** Most ranks this agent runs for one kernel. */
  slots: number;
  version: string;
  /** Listen on a non-loopback address without TLS (warned about on every connection). */
  insecure?: boolean;
  /** The certificate chain and key (PEM) the agent serves TLS with (`--tls-cert`, `--tls-key`). */
  tls?: { cert: Buffer; key: Buffer };
  /** One line per event (no trailing newline). */
  log: (line: string) => void;
  /**
   * `--data-via ssh` (data-relay.ts), --stdio only: `relay` is the Unix socket (ssh -R) the ranks
   * dial other hosts through; `inbound` the one (ssh -L) this agent serves relayed connections on.
   */
  dataRelay?: { relay: string; inbound: string };
}

export interface RunningAgent {
  /** host:port it listens on. */
  address: string;
  close(): Promise<void>;
}

export class AgentRefusal extends Error {
  override readonly name = "AgentRefusal";
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  checkClockSkew();
  if (!isLoopback(options.host) && !options.insecure && !options.tls) {
    throw new AgentRefusal(
      `distlab agent: refusing to listen on ${options.host}, which is not a loopback address, without TLS: the control connection would be readable on the network; give --tls-cert FILE --tls-key FILE, listen on 127.0.0.1 (and reach it through an SSH tunnel, or let the kernel start agents with --launcher ssh), or pass --insecure`,
    );
  }
  const sessions = new Set<AgentSession>();
  const onConnection = (socket: net.Socket) => {
    socket.setNoDelay(true);
    const endpoint = { peer: `${socket.remoteAddress}:${socket.remotePort}`, localAddress: socket.localAddress ?? "127.0.0.1" };
    const session = new AgentSession(socket, endpoint, options);
    sessions.add(session);
    socket.once("close", () => sessions.delete(session));
  };
  const server = options.tls ? tls.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: "TLSv1.2" }, onConnection) : net.createServer(onConnection);
  // A client that fails the TLS handshake never reaches a session: log it as a refusal.
  server.on("tlsClientError", (error, socket) => options.log(`refused ${socket.remoteAddress}:${socket.remotePort}: TLS handshake failed (${error.message})`));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const bound = server.address() as net.AddressInfo;
  const address = `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
  options.log(`listening on ${address} (protocol ${AGENT_PROTOCOL}, distlab ${options.version}, ${options.slots} slots, ${options.tls ? "TLS" : "no TLS"})`);
  return {
    address,
    close: async () => {
      for (const session of sessions) session.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Serves one kernel over this process's stdin and stdout: `distlab agent --stdio`, which the
 * kernel's SSH launcher (ssh-launcher.ts) runs on a host. The token is the first line of stdin
 * (so it is in neither argv nor the environment); the handshake and the control connection follow
 * on the same stream. When stdin ends (the kernel closed the group, or died, and ssh closed the
 * channel) the ranks are stopped and `whenDone` resolves: the agent leaves no orphans.
 * The ranks listen on the address the ssh client reached this host at (SSH_CONNECTION).
 */
export async function serveStdio(options: Omit<AgentOptions, "host" | "port" | "token" | "insecure">): Promise<{ whenDone: Promise<void> }> {
  checkClockSkew();
  const token = await readTokenLine(process.stdin);
  const [kernel, , agent] = (process.env.SSH_CONNECTION ?? "").split(" ");
  const addresses = { agent: agent || "127.0.0.1", kernel: kernel || "127.0.0.1" };
  const stream = Duplex.from({ readable: process.stdin, writable: process.stdout });
  const endpoint = { peer: `${addresses.kernel} (over ssh)`, localAddress: addresses.agent, addresses };
  const inbound = options.dataRelay ? await serveInbound(options.dataRelay.inbound, addresses.agent, options.log) : undefined;
  const session = new AgentSession(stream, endpoint, { ...options, host: addresses.agent, port: 0, token });
  if (inbound) {
    void session.whenClosed.then(() => {
      inbound.close();
      // sshd leaves the -R socket behind; both are this session's, named afresh by its kernel
      for (const path of [options.dataRelay!.relay, options.dataRelay!.inbound]) rmSync(path, { force: true });
    });
  }
  options.log(`serving a kernel at ${addresses.kernel} over ssh stdin/stdout (protocol ${AGENT_PROTOCOL}, distlab ${options.version}, ${options.slots} slots; ranks listen on ${addresses.agent})`);
  return { whenDone: session.whenClosed };
}

/** A malformed clock-skew test hook stops the agent before it serves anyone (its ranks would read it as 0). */
function checkClockSkew(): void {
  try {
    testClockSkewUs();
  } catch (error) {
    throw new AgentRefusal(`distlab agent: ${(error as Error).message}`);
  }
}

/** The first line of `input` (at most MAX_TOKEN_LINE bytes); what follows it is put back for the next reader. */
function readTokenLine(input: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let held = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      held = Buffer.concat([held, chunk]);
      const end = held.indexOf(0x0a);
      if (end < 0 && held.byteLength <= MAX_TOKEN_LINE) return;
      input.off("data", onData);
      input.off("end", onEnd);
      input.pause();
      if (end < 0) return reject(new AgentRefusal(`distlab agent --stdio: the first line of stdin (the token) is longer than ${MAX_TOKEN_LINE} bytes`));
      const token = held.subarray(0, end).toString("utf8").trim();
      if (end + 1 < held.byteLength) input.unshift(held.subarray(end + 1));
      if (token.length < MIN_TOKEN_CHARS) return reject(new AgentRefusal(`distlab agent --stdio: the token on stdin is ${token.length} characters, fewer than ${MIN_TOKEN_CHARS}`));
      resolve(Buffer.from(token, "utf8"));
    };
    const onEnd = () => reject(new AgentRefusal("distlab agent --stdio: stdin ended before the token line"));
    input.on("data", onData);
    input.once("end", onEnd);
  });
}

/** Environment variable of the agent: milliseconds of silence from the kernel after which it ends that kernel's session. */
export const KERNEL_SILENCE_ENV = "DISTLAB_AGENT_KERNEL_SILENCE_MS";
/**
 * The default of KERNEL_SILENCE_ENV: long, because the kernel's pings come from its main thread,
 * which a cell of synchronous code in the kernel itself can hold for a while; a cut that long is
 * a host the user has lost anyway.
 */
const KERNEL_SILENCE_MS = 60_000;

function kernelSilenceMs(): number {
  const given = Number(process.env[KERNEL_SILENCE_ENV]);
  return Number.isFinite(given) && given > 0 ? given : KERNEL_SILENCE_MS;
}

/** Longest token line read from stdin (bytes). */
const MAX_TOKEN_LINE = 4096;

/** Where a session's stream runs: the peer as logged, and the address this host is reached at. */
export interface SessionEndpoint {
  peer: string;
  localAddress: string;
  /** Sent in the challenge by an agent whose stream has no socket addresses (--stdio). */
  addresses?: { agent: string; kernel: string };
  /** Sent in the challenge by an agent that dialled the kernel (--connect, agent-dial.ts). */
  rendezvous?: AgentAnnouncement;
}

type Phase = "handshake" | "serving" | "closed";

/**
 * One kernel's connection: the handshake, then its ranks. The stream may be a socket the agent
 * accepted (--listen), its stdin/stdout (--stdio) or a socket it dialled (--connect): the agent's
 * side of the handshake is the same on all three.
 */
export class AgentSession {
  private phase: Phase = "handshake";
  private readonly gate: HandshakeGate;
  private readonly peer: string;
  private readonly ranks = new Map<number, ChildProcess>();
  /** --ssh-tunnel: the ranks' rendezvous this agent runs for its kernel. */
  private readonly rendezvous: AgentRendezvous;
  private readonly timer: NodeJS.Timeout;
  /** Resolves when the connection has closed and this kernel's ranks were told to stop. */
  readonly whenClosed: Promise<void>;
  private markClosed!: () => void;

  constructor(
    private readonly socket: Duplex,
    private readonly endpoint: SessionEndpoint,
    private readonly options: AgentOptions,
  ) {
    this.whenClosed = new Promise((resolve) => (this.markClosed = resolve));
    this.peer = endpoint.peer;
    this.rendezvous = new AgentRendezvous(endpoint.localAddress, (message) => {
      if (!socket.destroyed) sendControl(socket, message);
    }, (line) => options.log(`kernel ${endpoint.peer}: ${line}`));
    const identity = {
      token: options.token, version: options.version, slots: options.slots, hostname: hostname(),
      ...(endpoint.addresses ? { addresses: endpoint.addresses } : {}),
      ...(endpoint.rendezvous ? { rendezvous: endpoint.rendezvous } : {}),
    };
    this.gate = new HandshakeGate(identity, (frame) => socket.write(frame));
    if (options.insecure) options.log(`WARNING: connection from ${this.peer} on an insecure listener (--insecure: no TLS, traffic is readable on the network)`);
    this.timer = setTimeout(() => this.refuse(`did not authenticate within ${HANDSHAKE_TIMEOUT_MS / 1000} s`), HANDSHAKE_TIMEOUT_MS);
    socket.on("data", this.onHandshakeData);
    socket.on("error", () => undefined);
    socket.once("close", () => this.closed());
    // A stream from stdin reports its end before (or instead of) closing.
    socket.once("end", () => socket.destroy());
  }

  end(): void {
    this.socket.destroy();
  }

  /** Whether both sides authenticated (the session served, or serves, the kernel). */
  get authenticated(): boolean {
    return this.wasServing;
  }
  private wasServing = false;

  private readonly onHandshakeData = (chunk: Buffer): void => {
    const step = this.gate.push(chunk);
    if (step.kind === "refused") this.refuse(step.reason);
    else if (step.kind === "authenticated") {
      this.phase = "serving";
      this.wasServing = true;
      this.startServing(step.rest);
    }
  };

  private startServing(rest: Buffer): void {
    clearTimeout(this.timer);
    this.socket.off("data", this.onHandshakeData);
    this.options.log(`accepted ${this.peer}: authenticated kernel`);
    this.socket.write(encodeFrame(jsonFrame({ type: "welcome" })));
    const onBad = (reason: string) => {
      this.options.log(`closed ${this.peer}: ${reason}`);
      this.socket.destroy();
    };
    // What came after the auth frame goes through the control reader.
    readControl<ToAgent>(this.socket, new FrameReader(0), (message) => this.onControl(message), onBad);
    if (rest.byteLength > 0) this.socket.emit("data", rest);
    this.watchKernelSilence();
  }

  /**
   * The kernel pings every second (agent-link.ts); a connection to a kernel whose host vanished or
   * whose network was cut stays open (sshd does not probe its clients by default), so only silence
   * tells. After kernelSilenceMs() without a byte the session ends, and with it its ranks.
   */
  private watchKernelSilence(): void {
    const silenceMs = kernelSilenceMs();
    let heard = Date.now();
    this.socket.on("data", () => (heard = Date.now()));
    const timer = setInterval(() => {
      if (Date.now() - heard < silenceMs) return;
      this.options.log(`kernel ${this.peer} was silent for ${Math.round(silenceMs / 1000)} s (its host or the network is down); ending its session`);
      this.socket.destroy();
    }, Math.min(1000, silenceMs / 4));
    timer.unref();
    void this.whenClosed.then(() => clearInterval(timer));
  }

  private refuse(reason: string): void {
    if (this.phase === "closed" || this.phase === "serving") return;
    this.phase = "closed";
    clearTimeout(this.timer);
    this.options.log(`refused ${this.peer}: ${reason}`);
    this.socket.end(encodeFrame(jsonFrame({ type: "refused", reason })));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private closed(): void {
    clearTimeout(this.timer);
    const wasServing = this.phase === "serving";
    if (this.phase === "handshake") this.options.log(`refused ${this.peer}: it closed the connection before authenticating`);
    this.phase = "closed";
    if (wasServing) this.options.log(`kernel ${this.peer} disconnected; stopping its ${this.ranks.size} rank process(es)`);
    for (const child of this.ranks.values()) child.kill("SIGKILL");
    this.ranks.clear();
    this.rendezvous.closeAll();
    this.markClosed();
  }

  private onControl(message: ToAgent): void {
    // Stamped first: the time spent checking the message counts as the agent's processing, not the link's.
    const receivedUs = epochMicros();
    if (typeof message !== "object" || message === null || !Number.isInteger((message as { rank?: unknown }).rank)) {
      this.options.log(`closed ${this.peer}: a control message without a rank`);
      this.socket.destroy();
      return;
    }
    if (message.type === "ping") {
      sendControl(this.socket, { type: "pong", rank: -1 });
      return;
    }
    if (message.type === "rendezvous-open" || message.type === "rendezvous-close") {
      this.rendezvous.handle(message);
      return;
    }
    const child = this.ranks.get(message.rank);
    switch (message.type) {
      case "spawn":
        this.spawnRank(message.rank, message.memoryCapBytes, Number.isInteger(message.gpu) ? message.gpu : undefined);
        return;
      case "to-rank":
        if (child?.connected) child.send(message.message);
        return;
      case "signal":
        try {
          child?.kill(message.signal);
        } catch {
          // Not a signal name: nothing to send.
        }
        return;
      case "disconnect":
        if (child?.connected) child.disconnect();
        return;
      case "probe":
        sendControl(this.socket, { type: "probe-ack", rank: message.rank, id: message.id, bytes: message.payload?.byteLength ?? 0 });
        return;
      case "clock":
        sendControl(this.socket, { type: "clock-ack", rank: message.rank, id: message.id, receivedUs, sentUs: epochMicros() });
        return;
    }
  }

  private spawnRank(rank: number, memoryCapBytes: number, gpu?: number): void {
    if (this.ranks.has(rank)) this.ranks.get(rank)!.kill("SIGKILL");
    if (this.ranks.size >= this.options.slots) {
      sendControl(this.socket, { type: "exit", rank, code: null, signal: null, error: `the agent runs at most ${this.options.slots} ranks (--slots)` });
      return;
    }
    const noGpu = gpu === undefined ? undefined : missingGpu(gpu);
    if (noGpu) {
      this.options.log(`kernel ${this.peer}: refused rank ${rank}: ${noGpu}`);
      sendControl(this.socket, { type: "exit", rank, code: null, signal: null, error: `host ${hostname()}: ${noGpu}` });
      return;
    }
    const child = startRankProcess({
      rank, memoryCapBytes, gpu, listenHost: this.endpoint.localAddress, dataRelay: this.options.dataRelay?.relay,
      send: (message) => {
        if (!this.socket.destroyed) sendControl(this.socket, message);
      },
      forget: (exited) => {
        if (this.ranks.get(rank) === exited) this.ranks.delete(rank);
      },
    });
    this.ranks.set(rank, child);
    this.options.log(`kernel ${this.peer}: started rank ${rank} (pid ${child.pid})`);
  }
}
