/**
 * The agent's side of the handshake (handshake.ts) as a socket-free state
 * machine: it takes the connection's bytes as they come and answers with the
 * frames to send and one of "wait for more", "refused: why", or
 * "authenticated" (with the bytes past the auth frame, which are control
 * frames). The agent feeds it a socket's data (agent.ts); the security
 * tests feed it 100,000 random and mutated inputs directly, so what they
 * exercise is exactly what guards the agent.
 *
 * Nothing beyond the handshake's small JSON frames is parsed here, and
 * nothing over HANDSHAKE_FRAME_BYTES is buffered.
 */
import { FrameReader, encodeFrame } from "./frames";
import {
  AGENT_PROTOCOL, HANDSHAKE_FRAME_BYTES, freshNonce, jsonFrame, parseHandshake, proofMatches, proofOf,
  type AgentAnnouncement, type Auth, type Challenge, type Hello,
} from "./handshake";

export interface GateIdentity {
  token: Buffer;
  version: string;
  slots: number;
  hostname: string;
  /** Sent in the challenge by an agent whose stream has no socket addresses (`--stdio` over ssh). */
  addresses?: { agent: string; kernel: string };
  /** Announced in the challenge by an agent that dialled the kernel (`--connect`). */
  rendezvous?: AgentAnnouncement;
}

export type GateStep =
  | { kind: "wait" }
  | { kind: "refused"; reason: string }
  /** `rest`: bytes after the auth frame, still framed (the control connection's first bytes). */
  | { kind: "authenticated"; rest: Buffer };

export class HandshakeGate {
  private phase: "hello" | "auth" | "done" = "hello";
  private readonly reader = new FrameReader(HANDSHAKE_FRAME_BYTES);
  private kernelNonce = "";
  private agentNonce = "";

  /** `send` writes one frame (the challenge) to the peer. */
  constructor(
    private readonly identity: GateIdentity,
    private readonly send: (frame: Buffer) => void,
  ) {}

  /** Takes the next bytes; once it has answered refused or authenticated, it takes no more. */
  push(chunk: Buffer): GateStep {
    if (this.phase === "done") return { kind: "refused", reason: "the handshake is over" };
    this.reader.append(chunk);
    // One frame at a time: what follows the auth frame is the control connection's (a task may be
    // far larger than a handshake frame), handed on unread.
    for (;;) {
      try {
        const frame = this.reader.next();
        if (frame === undefined) return { kind: "wait" };
        if (this.step(frame)) return this.finish({ kind: "authenticated", rest: this.reader.drain() });
      } catch (error) {
        return this.finish({ kind: "refused", reason: (error as Error).message });
      }
    }
  }

  private finish(step: GateStep): GateStep {
    this.phase = "done";
    return step;
  }

  /** One handshake frame; true once the kernel has proved it holds the token. Throws what is wrong. */
  private step(frame: Buffer): boolean {
    if (this.phase === "hello") {
      const hello = parseHandshake<Hello>(frame, "hello", { protocol: "number", version: "string", nonce: "string" });
      this.kernelNonce = hello.nonce;
      this.agentNonce = freshNonce();
      const challenge: Challenge = {
        type: "challenge",
        protocol: AGENT_PROTOCOL,
        version: this.identity.version,
        slots: this.identity.slots,
        hostname: this.identity.hostname,
        nonce: this.agentNonce,
        proof: proofOf(this.identity.token, "agent", this.kernelNonce, this.agentNonce),
        ...(this.identity.addresses ? { addresses: this.identity.addresses } : {}),
        ...(this.identity.rendezvous ? { rendezvous: this.identity.rendezvous } : {}),
      };
      // Sent even to a kernel of another protocol, so that it can say which versions differ.
      this.send(encodeFrame(jsonFrame(challenge)));
      if (hello.protocol !== AGENT_PROTOCOL) throw new Error(`the kernel speaks protocol ${hello.protocol} (distlab ${hello.version.slice(0, 40)}), this agent ${AGENT_PROTOCOL}`);
      this.phase = "auth";
      return false;
    }
    const refusal = kernelRefusal(frame);
    if (refusal !== undefined) throw new Error(`the kernel refused this agent: ${refusal}`);
    const auth = parseHandshake<Auth>(frame, "auth", { proof: "string" });
    if (!proofMatches(auth.proof, proofOf(this.identity.token, "kernel", this.agentNonce, this.kernelNonce))) {
      throw new Error("wrong token: the kernel's proof does not match (a different token, or a replayed handshake)");
    }
    return true;
  }
}

/**
 * The reason of a `refused` frame from a kernel this agent dialled (rendezvous.ts), cut to 300
 * printable characters since it comes from a peer not yet authenticated; undefined for any other frame.
 */
function kernelRefusal(frame: Buffer): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(frame.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || (value as { type?: unknown }).type !== "refused") return undefined;
  const reason = (value as { reason?: unknown }).reason;
  return typeof reason === "string" ? reason.replace(/[^\x20-\x7e]/g, "?").slice(0, 300) : "(no reason given)";
}
