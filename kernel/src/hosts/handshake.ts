/**
 * Mutual authentication of a kernel and an agent that share a token, over
 * the control connection's first frames (JSON, each at most
 * HANDSHAKE_FRAME_BYTES):
 *
 *   kernel -> agent  hello      { protocol, version, nonce: Nk }
 *   agent -> kernel  challenge  { protocol, version, slots, hostname, nonce: Na, proof: HMAC(token, "agent" Nk Na) }
 *   kernel -> agent  auth       { proof: HMAC(token, "kernel" Na Nk) }
 *   agent -> kernel  welcome    {}            (or refused { reason } and the connection closes)
 *
 * Who opened the socket does not matter: an agent that dials the kernel
 * (`distlab agent --connect`, agent-dial.ts) still answers the kernel's hello,
 * and the kernel, having accepted the socket (rendezvous.ts), still speaks
 * first. A kernel that refuses a dialling agent sends refused { reason }
 * in place of its auth frame.
 *
 * Nonces are 32 fresh random bytes from each side, so a recorded auth frame
 * answers a nonce that will never be asked again (a replay fails), and the
 * role tag keeps the agent's proof from being replayed as the kernel's.
 * Proofs are compared with crypto.timingSafeEqual. The token never crosses
 * the wire.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Version of the control protocol; a kernel and an agent must speak the same one. */
export const AGENT_PROTOCOL = 1;
/** Largest handshake frame body (bytes): nothing bigger is buffered before authentication. */
export const HANDSHAKE_FRAME_BYTES = 4096;
/** How long a connection may take to authenticate (milliseconds) before the agent closes it. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
const NONCE_BYTES = 32;

export interface Hello {
  type: "hello";
  protocol: number;
  version: string;
  nonce: string;
}
export interface Challenge {
  type: "challenge";
  protocol: number;
  version: string;
  /** Ranks the agent runs at most (its `--slots`). */
  slots: number;
  hostname: string;
  nonce: string;
  proof: string;
  /**
   * Only from an agent serving over its stdin/stdout (started through ssh): the address its host
   * is reached at (its ranks listen there) and the address it sees the kernel at (from
   * SSH_CONNECTION), since that stream has no socket addresses of its own.
   */
  addresses?: { agent: string; kernel: string };
  /**
   * Only from an agent that dialled the kernel (`distlab agent --connect`): which of the `world`
   * agents it is, so that the kernel's rendezvous places ranks in the agents' order (rendezvous.ts).
   */
  rendezvous?: AgentAnnouncement;
}
/** Agent `index` (0-based) of `world` agents, from the scheduler's variables (rendezvous-env.ts). */
export interface AgentAnnouncement {
  index: number;
  world: number;
}
export interface Auth {
  type: "auth";
  proof: string;
}
export type HandshakeReply = { type: "welcome" } | { type: "refused"; reason: string };

export function freshNonce(): string {
  return randomBytes(NONCE_BYTES).toString("hex");
}

/**
 * Who proves: the agent or the kernel (control connections), or a rank that dialled or accepted a
 * data connection (comm/data-handshake.ts). The tag keeps one side's proof from serving as the other's.
 */
export type ProofRole = "agent" | "kernel" | "rank-dialler" | "rank-acceptor";

/**
 * HMAC-SHA256(token, role, both nonces[, binding]) as hex. `binding` ties the proof to what the
 * connection is for (a data connection's world id and its two ranks), so a proof made for one
 * pair of ranks does not open another.
 */
export function proofOf(token: Buffer, role: ProofRole, askerNonce: string, answererNonce: string, binding?: string): string {
  const tail = binding === undefined ? "" : `\0${binding}`;
  return createHmac("sha256", token).update(`distlab-${role}\0${askerNonce}\0${answererNonce}${tail}`).digest("hex");
}

/** Constant-time comparison of a proof received (any value) with the expected hex digest. */
export function proofMatches(received: unknown, expected: string): boolean {
  if (typeof received !== "string" || !/^[0-9a-f]{64}$/.test(received)) return false;
  return timingSafeEqual(Buffer.from(received, "hex"), Buffer.from(expected, "hex"));
}

/** Parses one handshake frame of the expected type; throws an Error saying what is wrong (no content echoed). */
export function parseHandshake<T extends { type: string }>(body: Buffer, type: T["type"], fields: Record<string, "string" | "number">): T {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error(`malformed ${type} frame: not JSON`);
  }
  if (typeof value !== "object" || value === null || (value as { type?: unknown }).type !== type) throw new Error(`malformed frame: expected a ${type} frame`);
  for (const [field, kind] of Object.entries(fields)) {
    if (typeof (value as Record<string, unknown>)[field] !== kind) throw new Error(`malformed ${type} frame: ${field} is not a ${kind}`);
  }
  const nonce = (value as { nonce?: unknown }).nonce;
  if (nonce !== undefined && !/^[0-9a-f]{64}$/.test(String(nonce))) throw new Error(`malformed ${type} frame: the nonce is not 32 bytes of hex`);
  return value as T;
}

export function jsonFrame(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}
