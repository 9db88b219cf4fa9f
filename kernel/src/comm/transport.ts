// The point-to-point layer every algorithm is written against. A transport
// moves framed messages between world ranks; the algorithms (ring,
// recursive doubling, ...) only describe which sends and receives run
// together in each step.
import type { Descriptor } from "./descriptor";
import type { CommArray, LinkModel } from "./types";
import type { WireCounters } from "./wire-counters";
import type { TrafficCounts } from "./wire-stats";
import { epochMicros } from "../trace/clock";

export interface SendSpec {
  /** world rank */
  peer: number;
  payload: Uint8Array;
}

export interface RecvSpec {
  /** world rank */
  peer: number;
  /** expected payload bytes; undefined = take what the sender's frame says */
  bytes?: number;
  /** called with the frame's payload bytes before any data (to size a buffer) */
  onStart?(payloadBytes: number): void;
  /**
   * Optional: memory the transport may place payload bytes [offset, offset +
   * length) in before passing them to onData (at most maxBytes; offset is a
   * multiple of 16), so a socket can read straight into the destination.
   * onData must then accept a chunk that already lies there. Transports that
   * own their receive memory (shm rings) ignore it.
   */
  into?(offset: number, maxBytes: number): Uint8Array | undefined;
  /**
   * Called for each piece of payload as it arrives, in order. `chunk` is only
   * valid during the call (it may view transport memory); `offset` is the
   * piece's byte offset in the payload, always a multiple of 16 bytes.
   */
  onData(chunk: Uint8Array, offset: number): void;
}

/** What a transport needs to know about the call it is serving. */
export interface CallContext {
  /** this rank's descriptor of the call; frames carry it, receivers check it */
  desc: Descriptor;
  /** group rank -> world rank, for error messages in group terms */
  label: string;
  link?: LinkModel;
  timeoutMs: number;
  /** what the traffic counts under in the rank's WireStats: "allReduce", ..., "send", "recv" */
  op: string;
  /** this call's own traffic so far, added to by the transport as bytes move (for the call's span) */
  traffic: TrafficCounts;
  /** world ranks of the call's group, in group-rank order (absent: the whole world) */
  members?: readonly number[];
}

export interface Transport {
  readonly rank: number;
  readonly size: number;
  readonly kind: "shm" | "tcp";
  /** whether some of its connections are TCP/IP (another host, or loopback TCP) rather than memory or Unix sockets */
  readonly overNetwork?: boolean;
  /** the rank's wire counters, shared by the world communicator and its groups */
  readonly wire: WireCounters;
  /** Announce the call this rank has entered (for mismatch detection while waiting). */
  enter(call: CallContext): void;
  /** Run these sends and receives concurrently; resolves when all are done. */
  exchange(call: CallContext, sends: SendSpec[], recvs: RecvSpec[]): Promise<void>;
  /** User point-to-point traffic, ordered per pair, separate from collectives. */
  sendUser(call: CallContext, spec: SendSpec): Promise<void>;
  recvUser(call: CallContext, spec: RecvSpec): Promise<void>;
  /**
   * Optional: the world's ring allReduce of `x` into `out` run by the transport itself (the TCP
   * world's native ring between hosts), or undefined where it does not take this call.
   */
  nativeAllReduce?(call: CallContext, x: CommArray, out: CommArray): Promise<void> | undefined;
  /** Optional: whether nativeAllReduce takes a world allReduce of this dtype and reduce op (codes) with no emulated link. */
  takesNativeAllReduce?(dtype: number, redop: number): boolean;
  /**
   * Resolves once every check of the calls this rank has made has passed; rejects with the first
   * that failed. Transports that check everything inside the call resolve at once
   * (agreement-window.ts says why a socket transport does not).
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** Frame header: magic, descriptor (8 words), payload bytes, 2 spare; 48 bytes keeps payloads 16-aligned. */
export const FRAME_HEADER_WORDS = 12;
export const FRAME_HEADER_BYTES = FRAME_HEADER_WORDS * 4;
export const FRAME_MAGIC = 0x44535431; // "DST1"

/**
 * Monotonic clock in microseconds since the Unix epoch, comparable across threads and processes of one host:
 * the span clock (trace/clock.ts), so collectives' spans and the rank's own spans share one clock and its test hook.
 */
export const nowMicros = epochMicros;
