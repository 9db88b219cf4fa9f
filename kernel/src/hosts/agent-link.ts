/**
 * The kernel's connection to one agent: dial, authenticate both ways
 * (handshake.ts), check that both speak the same protocol and version, then
 * carry the agent's ranks (remote-rank.ts) over the control connection.
 */
import * as net from "node:net";
import type { Duplex } from "node:stream";
import { HostsError } from "./host-spec";
import { dialChecked, type TlsTrust } from "./checked-dial";
import { readControl, sendControl, type FromAgent, type ToAgent } from "./control";
import { encodeFrame, FrameReader } from "./frames";
import {
  AGENT_PROTOCOL, HANDSHAKE_FRAME_BYTES, freshNonce, jsonFrame, parseHandshake, proofMatches, proofOf,
  type AgentAnnouncement, type Challenge, type HandshakeReply,
} from "./handshake";

/** How long dialling and authenticating one agent may take (milliseconds). */
export const AGENT_CONNECT_TIMEOUT_MS = 5000;
/** How often the kernel pings an authenticated agent (milliseconds). */
export const AGENT_HEARTBEAT_MS = 1000;
/**
 * How long an agent may stay silent (no pong, no other frame) before the kernel gives it up as a
 * host that never answers (milliseconds): its ranks then end as lost, and the cell's error names them.
 * A TCP connection to a stopped process or a vanished host stays open, so only silence tells.
 */
export const AGENT_SILENCE_MS = 10_000;
/** The least silence that gives an agent up (milliseconds): a loaded host may miss two or three pings. */
export const AGENT_SILENCE_FLOOR_MS = 3000;

/**
 * How long an agent may stay silent during a cell whose collective timeout is `timeoutMs`:
 * max(3 s, min(timeout, 10 s)). A short --timeout gives a vanished host up as soon as a peer's
 * collective would time out, never under the floor; a long one keeps the 10 s cap, since a
 * host that does not answer pings for 10 s is gone whatever the cell waits for.
 */
export function agentSilenceFor(timeoutMs: number): number {
  return Math.max(AGENT_SILENCE_FLOOR_MS, Math.min(timeoutMs, AGENT_SILENCE_MS));
}

export interface AgentLinkOptions {
  host: string;
  port: number;
  token: Buffer;
  /** This kernel's distlab version. */
  version: string;
  /** Heard when the connection ends (the agent died, the network went). */
  onClose?: (reason: string) => void;
  /** Overrides AGENT_SILENCE_MS. */
  silenceMs?: number;
  /** Dial over TLS and verify the agent's certificate (else plain TCP). */
  tls?: AgentTls;
}

/** How the kernel verifies an agent's TLS certificate: a CA that signed it, or its pinned SHA-256 fingerprint. */
/** How the kernel trusts an agent's TLS certificate (checked-dial.ts). */
export type AgentTls = TlsTrust;

/** `AB:CD:...` or `abcd...` (64 hex digits, with or without colons) -> `AB:CD:...`, as Node reports fingerprint256; undefined if not one. */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text.replace(/^sha256:/i, "").replace(/:/g, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return undefined;
  return hex.toUpperCase().match(/../g)!.join(":");
}

export interface AgentStreamOptions extends Omit<AgentLinkOptions, "host" | "port"> {
  /** How the agent is named in errors: host:port, or the ssh destination. */
  address: string;
  /** This kernel's address as the agent's host sees it, unless the agent says otherwise. */
  kernelAddress: string;
  /** How long the handshake may take (milliseconds; default AGENT_CONNECT_TIMEOUT_MS). */
  timeoutMs?: number;
  /** More to say when the handshake fails, e.g. what the ssh client printed. */
  explain?: (error: Error) => Promise<string>;
  /** Why the stream ended, from what carries it (ssh's last words), given the stream's own reason. */
  closeReason?: (reason: string) => string;
  /**
   * For an agent that dialled this kernel (rendezvous.ts): once the agent has proved the token,
   * a reason to refuse it (an index taken or out of range), or undefined to go on. A refusal, and a
   * failed proof, is then told to the agent in a refused frame before the stream closes.
   */
  admit?: (challenge: Challenge) => string | undefined;
  /** How errors name what was being connected (default `--hosts`). */
  flag?: string;
}

export class AgentLink {
  private readonly listeners = new Map<number, (message: FromAgent) => void>();
  private closedReason?: string;
  /** Silence after which the agent is given up (milliseconds); giveUpAfter() changes it per cell. */
  private silenceMs = AGENT_SILENCE_MS;

  private constructor(
    readonly address: string,
    private readonly socket: Duplex,
    readonly slots: number,
    readonly hostname: string,
    readonly agentVersion: string,
    /** Where the agent's host reaches this kernel: the ranks' rendezvous listens there. */
    readonly localAddress: string,
    /** Which agent of how many, for an agent that dialled this kernel (`distlab agent --connect`). */
    readonly announced?: AgentAnnouncement,
  ) {}

  /** Where this kernel reached the agent's host, as the host saw it (an agent over ssh says so): its ranks listen there. */
  agentAddress?: string;

  /** Connects and authenticates; every failure is a HostsError naming the agent. */
  static async connect(options: AgentLinkOptions): Promise<AgentLink> {
    const address = `${options.host}:${options.port}`;
    let socket: net.Socket;
    try {
      socket = await dialChecked({
        host: options.host,
        port: options.port,
        ...(options.tls ? { tls: options.tls } : {}),
        timeoutMs: AGENT_CONNECT_TIMEOUT_MS,
        fingerprintMismatch: (seen, pinned) => `its TLS certificate has SHA-256 fingerprint ${seen}, not the pinned ${pinned} (--tls-fingerprint)`,
      });
    } catch (error) {
      const message = (error as Error).message;
      if (options.tls) throw new HostsError(`--hosts: the agent at ${address}: TLS: ${message}`);
      throw new HostsError(`--hosts: cannot reach the agent at ${address}: ${message} (is \`distlab agent --listen ${address}\` running there?)`);
    }
    // An agent serving TLS drops a plain hello at once: say what to check.
    const explain = options.tls
      ? undefined
      : async (error: Error) => (/closed the connection|not JSON|TLS|ECONNRESET/.test(error.message) ? " (if the agent runs with --tls-cert, pass --tls-ca FILE or --tls-fingerprint SHA256)" : "");
    return AgentLink.authenticate(socket, { ...options, address, kernelAddress: socket.localAddress ?? "127.0.0.1", ...(explain ? { explain } : {}) });
  }

  /**
   * Runs the handshake over `stream` (a TCP connection, or the stdin/stdout of an agent started
   * through ssh) and, once both sides are authenticated, serves the agent's ranks over it.
   * `explain` adds what else is known when the stream fails (an ssh client's own error lines).
   */
  static async authenticate(stream: Duplex, options: AgentStreamOptions): Promise<AgentLink> {
    // Frames are cut one at a time as the handshake asks for them: what follows the agent's reply
    // is the served connection's (serve() takes the reader's bytes), however large its frames.
    const reader = new FrameReader(HANDSHAKE_FRAME_BYTES);
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onData = (chunk: Buffer) => {
      reader.append(chunk);
      wake?.();
    };
    const onEnd = (error?: Error) => {
      failure ??= new Error(error ? error.message : "the agent closed the connection");
      wake?.();
    };
    stream.on("data", onData);
    stream.on("error", onEnd);
    stream.on("close", () => onEnd());
    stream.on("end", () => onEnd());
    const timeoutMs = options.timeoutMs ?? AGENT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const nextFrame = async (): Promise<Buffer> => {
      for (;;) {
        const frame = reader.next(); // a FrameError for an oversized frame fails the handshake
        if (frame !== undefined) return frame;
        if (failure) throw failure;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no answer within ${timeoutMs / 1000} s`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    };
    /** What to tell an agent that dialled in and is refused (nothing is told to other peers). */
    let refusable: string | undefined;
    try {
      const kernelNonce = freshNonce();
      stream.write(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: options.version, nonce: kernelNonce })));
      const challenge = parseChallenge(await nextFrame());
      if (challenge.protocol !== AGENT_PROTOCOL || challenge.version !== options.version) {
        throw new Error(
          `the agent runs distlab ${challenge.version} (protocol ${challenge.protocol}), this kernel distlab ${options.version} (protocol ${AGENT_PROTOCOL}); run the same distlab version on both`,
        );
      }
      if (!proofMatches(challenge.proof, proofOf(options.token, "agent", kernelNonce, challenge.nonce))) {
        refusable = "wrong token: the agent's proof does not match";
        throw new Error("the agent did not prove it holds the token of --token-file (a different token, or not a distlab agent)");
      }
      const refusal = options.admit?.(challenge);
      if (refusal !== undefined) {
        refusable = refusal;
        throw new Error(refusal);
      }
      stream.write(encodeFrame(jsonFrame({ type: "auth", proof: proofOf(options.token, "kernel", challenge.nonce, kernelNonce) })));
      const reply = parseReply(await nextFrame());
      if (reply.type === "refused") throw new Error(`the agent refused this kernel: ${reply.reason}`);
      stream.off("data", onData);
      const kernelAddress = challenge.addresses?.kernel ?? options.kernelAddress;
      const link = new AgentLink(options.address, stream, challenge.slots, challenge.hostname, challenge.version, kernelAddress, challenge.rendezvous);
      link.silenceMs = options.silenceMs ?? AGENT_SILENCE_MS;
      link.agentAddress = challenge.addresses?.agent;
      link.serve(reader, options.onClose, options.closeReason);
      return link;
    } catch (error) {
      if (options.admit !== undefined && refusable !== undefined) {
        stream.end(encodeFrame(jsonFrame({ type: "refused", reason: refusable })));
        setTimeout(() => stream.destroy(), 1000).unref();
      } else stream.destroy();
      const more = (await options.explain?.(error as Error)) ?? "";
      throw new HostsError(`${options.flag ?? "--hosts"}: agent at ${options.address}: ${(error as Error).message}${more}`);
    }
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Routes the messages of `rank` to `listener` (one listener a rank); returns the switch that stops it. */
  listen(rank: number, listener: (message: FromAgent) => void): () => void {
    this.listeners.set(rank, listener);
    return () => {
      if (this.listeners.get(rank) === listener) this.listeners.delete(rank);
    };
  }

  /** Throws (DataCloneError) if the message cannot be serialized; nothing is sent then. */
  send(message: ToAgent): void {
    if (this.closedReason !== undefined) throw new Error(`the connection to the agent at ${this.address} is closed (${this.closedReason})`);
    sendControl(this.socket, message);
  }

  /** Why the connection ended, if it did. */
  get closeReason(): string | undefined {
    return this.closedReason;
  }

  close(): void {
    this.socket.destroy();
  }

  /** From now on, gives the agent up after `ms` of silence (agentSilenceFor a cell's --timeout). */
  giveUpAfter(ms: number): void {
    this.silenceMs = ms;
  }

  private serve(reader: FrameReader, onClose: ((reason: string) => void) | undefined, closeReason: ((reason: string) => string) | undefined): void {
    let reason = "the agent closed the connection";
    const leftover = reader.drain();
    // Heartbeat: any bytes from the agent count as an answer; a silent agent is given up.
    let lastHeard = Date.now();
    this.socket.on("data", () => (lastHeard = Date.now()));
    const heartbeat = setInterval(() => {
      if (Date.now() - lastHeard > this.silenceMs) {
        reason = `the agent did not answer for ${Number((this.silenceMs / 1000).toFixed(1))} s (its process stopped, or its host or the network is down)`;
        this.socket.destroy();
        return;
      }
      try {
        this.send({ type: "ping", rank: -1 });
      } catch {
        // Closing already: the close handler below reports why.
      }
    }, Math.min(AGENT_HEARTBEAT_MS, this.silenceMs / 2));
    heartbeat.unref();
    readControl<FromAgent>(
      this.socket,
      reader,
      (message) => this.listeners.get(message.rank)?.(message),
      (bad) => {
        reason = bad;
        this.socket.destroy();
      },
    );
    this.socket.on("error", (error) => (reason = error.message));
    // The agent's side ended (an ssh channel's stdout reaching its end): the link is over.
    this.socket.once("end", () => this.socket.destroy());
    this.socket.once("close", () => {
      clearInterval(heartbeat);
      this.closedReason = closeReason ? closeReason(reason) : reason;
      onClose?.(this.closedReason);
      for (const listener of [...this.listeners.values()]) listener({ type: "exit", rank: -1, code: null, signal: null, error: `lost the connection to the agent at ${this.address}: ${this.closedReason}` });
    });
    if (leftover.byteLength > 0) this.socket.emit("data", leftover);
  }
}

function parseChallenge(frame: Buffer): Challenge {
  const challenge = parseHandshake<Challenge>(frame, "challenge", { protocol: "number", version: "string", slots: "number", hostname: "string", nonce: "string", proof: "string" });
  if (!Number.isInteger(challenge.slots) || challenge.slots < 1) throw new Error(`the agent offers ${challenge.slots} slots`);
  const addresses = challenge.addresses as unknown;
  if (addresses !== undefined) {
    const valid = typeof addresses === "object" && addresses !== null &&
      ["agent", "kernel"].every((key) => typeof (addresses as Record<string, unknown>)[key] === "string" && /^[0-9A-Za-z.:%_-]{1,100}$/.test((addresses as Record<string, string>)[key]!));
    if (!valid) throw new Error("malformed challenge frame: addresses is not { agent, kernel } of IP addresses");
  }
  const announced = challenge.rendezvous as unknown;
  if (announced !== undefined) {
    const { index, world } = (announced ?? {}) as Record<string, unknown>;
    if (!Number.isInteger(index) || !Number.isInteger(world) || (index as number) < 0 || (world as number) < 1) throw new Error("malformed challenge frame: rendezvous is not { index, world } of whole numbers");
  }
  return challenge;
}

function parseReply(frame: Buffer): HandshakeReply {
  const type = (() => {
    try {
      return (JSON.parse(frame.toString("utf8")) as { type?: unknown }).type;
    } catch {
      return undefined;
    }
  })();
  if (type === "refused") return parseHandshake<HandshakeReply & { type: "refused" }>(frame, "refused", { reason: "string" });
  return parseHandshake<HandshakeReply & { type: "welcome" }>(frame, "welcome", {});
}
