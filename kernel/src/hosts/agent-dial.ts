/**
 * `distlab agent --connect HOST:PORT`: the agent dials the kernel's
 * rendezvous (rendezvous.ts) instead of listening, for schedulers that place
 * agents where the kernel cannot know (Slurm, Kubernetes, torchrun-style
 * scripts). Only the socket's direction differs from `--listen`: the kernel
 * still speaks first, both sides still prove the token (handshake.ts through
 * the same AgentSession), and the ranks are the same processes.
 *
 * The kernel may not be listening yet (its cell has not run): the agent dials
 * again with exponential backoff (DIAL_BACKOFF_FIRST_MS doubling up to
 * DIAL_BACKOFF_MAX_MS, with jitter so that many agents do not dial in step)
 * until `connectTimeoutMs` has passed, logging each attempt and each refusal.
 * A refusal during the handshake (a wrong token, an index already taken) is
 * retried too, since the kernel may be restarted with the right settings.
 * Once it has served a kernel and that connection closes (the group closed,
 * the kernel died), the agent is done: its ranks are stopped and it exits, as
 * a batch job's task should.
 */
import * as net from "node:net";
import { AgentSession, isLoopback, type AgentOptions } from "./agent";
import type { AgentTls } from "./agent-link";
import { DialError, dialChecked } from "./checked-dial";
import { AGENT_PROTOCOL, type AgentAnnouncement } from "./handshake";
import { testClockSkewUs } from "../trace/clock";

/** First wait between dial attempts (milliseconds); doubles after each failure. */
export const DIAL_BACKOFF_FIRST_MS = 250;
/** Longest wait between dial attempts (milliseconds). */
export const DIAL_BACKOFF_MAX_MS = 5000;
/** How long one attempt's TCP (and TLS) connect may take (milliseconds). */
const DIAL_ATTEMPT_MS = 5000;

export interface DialOptions extends Omit<AgentOptions, "tls" | "insecure"> {
  /** Verify the kernel's TLS certificate against a CA or a pinned fingerprint (else plain TCP). */
  tls?: AgentTls;
  /** Dial a non-loopback address without TLS (warned about on every attempt). */
  insecure?: boolean;
  /** Give up when no kernel has accepted this agent within this long (milliseconds). */
  connectTimeoutMs: number;
  /** Which agent this is, announced in the handshake (--connect env). */
  rendezvous?: AgentAnnouncement;
}

export class DialRefusal extends Error {
  override readonly name = "DialRefusal";
}

/**
 * Dials until one kernel has authenticated this agent, serves it, and resolves when that
 * connection closes. Rejects with DialRefusal when the deadline passes first, saying what the
 * last attempt met.
 */
export async function dialKernel(options: DialOptions): Promise<void> {
  const target = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
  if (!isLoopback(options.host) && !options.insecure && !options.tls) {
    throw new DialRefusal(
      `distlab agent: refusing to dial ${target}, which is not a loopback address, without TLS: the control connection would be readable on the network; give --tls-ca FILE or --tls-fingerprint SHA256 (the kernel serves TLS with --tls-cert/--tls-key), or pass --insecure`,
    );
  }
  try {
    testClockSkewUs();
  } catch (error) {
    throw new DialRefusal(`distlab agent: ${(error as Error).message}`);
  }
  const deadline = Date.now() + options.connectTimeoutMs;
  const who = options.rendezvous ? `agent ${options.rendezvous.index} of ${options.rendezvous.world}` : "agent";
  options.log(`${who}: dialling the kernel at ${target} (protocol ${AGENT_PROTOCOL}, distlab ${options.version}, ${options.slots} slots, ${options.tls ? "TLS" : "no TLS"}; giving up after ${options.connectTimeoutMs / 1000} s)`);
  let wait = DIAL_BACKOFF_FIRST_MS;
  for (let attempt = 1; ; attempt += 1) {
    let outcome: string;
    try {
      const socket = await openSocket(options, target);
      if (options.insecure && !options.tls) options.log(`WARNING: attempt ${attempt}: talking to ${target} without TLS (--insecure: traffic is readable on the network)`);
      const endpoint = { peer: `kernel ${target}`, localAddress: socket.localAddress ?? "127.0.0.1", ...(options.rendezvous ? { rendezvous: options.rendezvous } : {}) };
      const session = new AgentSession(socket, endpoint, { host: options.host, port: options.port, token: options.token, slots: options.slots, version: options.version, log: options.log });
      await session.whenClosed;
      if (session.authenticated) {
        options.log(`the kernel at ${target} closed the connection; this agent is done`);
        return;
      }
      outcome = "the handshake did not complete (see the line above)";
    } catch (error) {
      outcome = (error as Error).message;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new DialRefusal(`distlab agent: no kernel at ${target} accepted this agent within ${options.connectTimeoutMs / 1000} s (--connect-timeout); the last attempt: ${outcome}`);
    const pause = Math.min(left, wait * (0.75 + Math.random() / 2));
    options.log(`attempt ${attempt} to reach ${target}: ${outcome}; dialling again in ${(pause / 1000).toFixed(1)} s`);
    await new Promise((resolve) => setTimeout(resolve, pause));
    wait = Math.min(DIAL_BACKOFF_MAX_MS, wait * 2);
  }
}

/** One TCP (or TLS, with the certificate checked) connection to the kernel; rejects saying why not. */
async function openSocket(options: DialOptions, target: string): Promise<net.Socket> {
  try {
    return await dialChecked({
      host: options.host,
      port: options.port,
      ...(options.tls ? { tls: options.tls } : {}),
      timeoutMs: DIAL_ATTEMPT_MS,
      fingerprintMismatch: (seen, pinned) => `the kernel's TLS certificate at ${target} has SHA-256 fingerprint ${seen}, not the pinned ${pinned} (--tls-fingerprint)`,
    });
  } catch (error) {
    if (options.tls && error instanceof DialError && error.kind === "socket") throw new Error(`TLS: ${error.message}`);
    throw error;
  }
}
