/**
 * The control connection between a kernel and an agent once both are
 * authenticated (handshake.ts): frames (frames.ts) whose bodies are v8
 * serialized messages, the same structured clone that `--backend processes`
 * uses on its IPC channel, so typed arrays arrive as typed arrays. The
 * rank-to-rank data of collectives never travels here: ranks join a TCP
 * world among themselves.
 */
import { deserialize, serialize } from "node:v8";
import type { Duplex } from "node:stream";
import type { FromRankProcess, ToRankProcess } from "../cluster/rank-messages";
import { encodeFrame, FrameReader } from "./frames";

/** Largest frame after authentication (bytes): a cell, a pushed or pulled value, a result. */
export const CONTROL_FRAME_BYTES = 512 * 1024 * 1024;

/** Kernel -> agent. */
export type ToAgent =
  | { type: "spawn"; rank: number; memoryCapBytes: number; gpu?: number }
  | { type: "to-rank"; rank: number; message: ToRankProcess }
  | { type: "signal"; rank: number; signal: NodeJS.Signals }
  | { type: "disconnect"; rank: number }
  /** The kernel's heartbeat (agent-link.ts); rank is -1. The agent answers pong. */
  | { type: "ping"; rank: -1 }
  /** Measures the link (host-report.ts): the agent answers each with a probe-ack at once. rank is -1. */
  | { type: "probe"; rank: number; id: number; payload: Uint8Array }
  /** A clock ping (clock-sync.ts): the agent answers clock-ack at once, stamped on its own clock. rank is -2. */
  | { type: "clock"; rank: number; id: number }
  /** --ssh-tunnel: run the ranks' rendezvous on this host (agent-rendezvous.ts); rank is -3. */
  | { type: "rendezvous-open"; rank: -3; id: number; size: number; world: string; secret: Uint8Array; tls: boolean }
  | { type: "rendezvous-close"; rank: -3; id: number };

/** Agent -> kernel. `output` carries what the rank's process wrote outside its capture, and its lifeline reports. */
export type FromAgent =
  | { type: "spawned"; rank: number; pid: number }
  | { type: "from-rank"; rank: number; message: FromRankProcess }
  | { type: "output"; rank: number; stream: "stdout" | "stderr" | "lifeline"; text: string }
  | { type: "exit"; rank: number; code: number | null; signal: NodeJS.Signals | null; error?: string }
  | { type: "pong"; rank: -1 }
  | { type: "probe-ack"; rank: number; id: number; bytes: number }
  /** When the agent read the clock ping and when it wrote this answer: epoch microseconds on the agent's clock. */
  | { type: "clock-ack"; rank: number; id: number; receivedUs: number; sentUs: number }
  /** The rendezvous of rendezvous-open listens at `address` (host:port), or could not (`error`). */
  | { type: "rendezvous-opened"; rank: -3; id: number; address?: string; error?: string };

/** Sends one message; throws (DataCloneError) before anything is written if it cannot be serialized. */
export function sendControl(socket: Duplex, message: ToAgent | FromAgent): void {
  const body = serialize(message);
  if (body.byteLength > CONTROL_FRAME_BYTES) throw new RangeError(`a message of ${body.byteLength} bytes is over the control connection's limit of ${CONTROL_FRAME_BYTES} bytes`);
  socket.write(encodeFrame(body));
}

/**
 * Reads messages from `socket` after the handshake: `leftover` is what the handshake's reader had
 * buffered past its last frame. A frame that does not decode ends the connection through `onBad`.
 */
export function readControl<T>(socket: Duplex, reader: FrameReader, onMessage: (message: T) => void, onBad: (reason: string) => void): void {
  reader.limit = CONTROL_FRAME_BYTES;
  socket.on("data", (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = reader.push(chunk);
    } catch (error) {
      onBad((error as Error).message);
      return;
    }
    for (const frame of frames) {
      let message: T;
      try {
        message = deserialize(frame) as T;
      } catch (error) {
        onBad(`a frame did not decode: ${(error as Error).message}`);
        return;
      }
      onMessage(message);
    }
  });
}
