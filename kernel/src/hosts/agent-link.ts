/**
 * The kernel's connection to one agent: dial, authenticate both ways
 * (handshake.ts), check that both speak the same protocol and version, then
 * carry the agent's ranks (remote-rank.ts) over the control connection.
 */
import * as net from "node:net";
import { HostsError } from "./host-spec";
import { readControl, sendControl, type FromAgent, type ToAgent } from "./control";
import { encodeFrame, FrameReader } from "./frames";
import {
  AGENT_PROTOCOL, HANDSHAKE_FRAME_BYTES, freshNonce, jsonFrame, parseHandshake, proofMatches, proofOf,
  type Challenge, type HandshakeReply,
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
}

export class AgentLink {
  private readonly listeners = new Map<number, (message: FromAgent) => void>();
  private closedReason?: string;

  private constructor(
    readonly address: string,
    private readonly socket: net.Socket,
    readonly slots: number,
    readonly hostname: string,
    readonly agentVersion: string,
  ) {}

  /** Connects and authenticates; every failure is a HostsError naming the agent. */
  static async connect(options: AgentLinkOptions): Promise<AgentLink> {
    const address = `${options.host}:${options.port}`;
    const socket = net.connect({ host: options.host, port: options.port });
    socket.setNoDelay(true);
    const reader = new FrameReader(HANDSHAKE_FRAME_BYTES);
    const frames: Buffer[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onData = (chunk: Buffer) => {
      try {
        frames.push(...reader.push(chunk));
      } catch (error) {
        failure = error as Error;
      }
      wake?.();
    };
    const onEnd = (error?: Error) => {
      failure ??= new Error(error ? error.message : "the agent closed the connection");
      wake?.();
    };
    socket.on("data", onData);
    socket.on("error", onEnd);
    socket.on("close", () => onEnd());
    const deadline = Date.now() + AGENT_CONNECT_TIMEOUT_MS;
    const nextFrame = async (): Promise<Buffer> => {
      while (frames.length === 0) {
        if (failure) throw failure;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no answer within ${AGENT_CONNECT_TIMEOUT_MS / 1000} s`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
      return frames.shift()!;
    };
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no connection within ${AGENT_CONNECT_TIMEOUT_MS / 1000} s`)), AGENT_CONNECT_TIMEOUT_MS);
        socket.once("connect", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once("error", (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } catch (error) {
      socket.destroy();
      throw new HostsError(`--hosts: cannot reach the agent at ${address}: ${(error as Error).message} (is \`distlab agent --listen ${address}\` running there?)`);
    }
    try {
      const kernelNonce = freshNonce();
      socket.write(encodeFrame(jsonFrame({ type: "hello", protocol: AGENT_PROTOCOL, version: options.version, nonce: kernelNonce })));
      const challenge = parseChallenge(await nextFrame());
      if (challenge.protocol !== AGENT_PROTOCOL || challenge.version !== options.version) {
        throw new Error(
          `the agent runs distlab ${challenge.version} (protocol ${challenge.protocol}), this kernel distlab ${options.version} (protocol ${AGENT_PROTOCOL}); run the same distlab version on both`,
        );
      }
      if (!proofMatches(challenge.proof, proofOf(options.token, "agent", kernelNonce, challenge.nonce))) {
        throw new Error("the agent did not prove it holds the token of --token-file (a different token, or not a distlab agent)");
      }
      socket.write(encodeFrame(jsonFrame({ type: "auth", proof: proofOf(options.token, "kernel", challenge.nonce, kernelNonce) })));
      const reply = parseReply(await nextFrame());
      if (reply.type === "refused") throw new Error(`the agent refused this kernel: ${reply.reason}`);
      socket.off("data", onData);
      const link = new AgentLink(address, socket, challenge.slots, challenge.hostname, challenge.version);
      link.serve(reader, options.onClose, options.silenceMs ?? AGENT_SILENCE_MS);
      return link;
    } catch (error) {
      socket.destroy();
      throw new HostsError(`--hosts: agent at ${address}: ${(error as Error).message}`);
    }
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Where the agent sees this kernel's end: the address its ranks can reach this kernel at. */
  get localAddress(): string {
    return this.socket.localAddress ?? "127.0.0.1";
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

  private serve(reader: FrameReader, onClose: ((reason: string) => void) | undefined, silenceMs: number): void {
    let reason = "the agent closed the connection";
    const leftover = reader.drain();
    // Heartbeat: any bytes from the agent count as an answer; a silent agent is given up.
    let lastHeard = Date.now();
    this.socket.on("data", () => (lastHeard = Date.now()));
    const heartbeat = setInterval(() => {
      if (Date.now() - lastHeard > silenceMs) {
        reason = `the agent did not answer for ${(silenceMs / 1000).toFixed(0)} s (its process stopped, or its host or the network is down)`;
        this.socket.destroy();
        return;
      }
      try {
        this.send({ type: "ping", rank: -1 });
      } catch {
        // Closing already: the close handler below reports why.
      }
    }, Math.min(AGENT_HEARTBEAT_MS, silenceMs / 2));
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
    this.socket.once("close", () => {
      clearInterval(heartbeat);
      this.closedReason = reason;
      onClose?.(reason);
      for (const listener of [...this.listeners.values()]) listener({ type: "exit", rank: -1, code: null, signal: null, error: `lost the connection to the agent at ${this.address}: ${reason}` });
    });
    if (leftover.byteLength > 0) this.socket.emit("data", leftover);
  }
}

function parseChallenge(frame: Buffer): Challenge {
  const challenge = parseHandshake<Challenge>(frame, "challenge", { protocol: "number", version: "string", slots: "number", hostname: "string", nonce: "string", proof: "string" });
  if (!Number.isInteger(challenge.slots) || challenge.slots < 1) throw new Error(`the agent offers ${challenge.slots} slots`);
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
