/**
 * Authentication of a TCP world's connections (tcp-world.ts): every
 * rank-to-rank data connection and every registration at the rendezvous.
 * The kernel makes a fresh secret per world (32 random bytes) and hands it
 * to each rank inside the connect task, over the channel it already trusts
 * (a process rank's IPC channel, an agent's authenticated control
 * connection); it never travels in argv, the environment or a log. Each
 * connection then opens with a mutual challenge-response, the agents' own
 * primitives (hosts/handshake.ts) bound to this connection:
 *
 *   dialler  -> acceptor  hello      { world, from, to, nonce: Nd }
 *   acceptor -> dialler   challenge  { nonce: Na, proof: HMAC(secret, "rank-acceptor" Nd Na world from to) }
 *   dialler  -> acceptor  auth       { proof: HMAC(secret, "rank-dialler" Na Nd world from to) }
 *   acceptor -> dialler   welcome    {}
 *
 * `from` is the dialling rank, `to` the accepting one (-1: the rendezvous).
 * Fresh nonces on both sides make a recorded auth frame useless on a new
 * connection (a replay fails); the binding keeps a proof made for one pair
 * of ranks, or one world, from opening another. Frames are frames.ts's
 * (4-byte length, JSON body of at most HANDSHAKE_FRAME_BYTES); nothing else
 * is parsed before the proof checks out. A refused connection is closed
 * without an answer, and the refusing side reports the peer and why.
 *
 * The two sides are socket-free state machines (bytes in, frames out), the
 * way hosts/handshake-gate.ts is, so that what the tests feed is exactly
 * what guards the ranks; `authenticate` runs one over a socket.
 */
import type { Socket } from "node:net";
import { FrameReader, encodeFrame } from "../hosts/frames";
import { HANDSHAKE_FRAME_BYTES, freshNonce, jsonFrame, parseHandshake, proofMatches, proofOf } from "../hosts/handshake";

/** Version of the data handshake; ranks of one world run one kernel's code, so a mismatch is a bug or a stranger. */
export const DATA_PROTOCOL = 1;
/** `to` of a registration at the rendezvous. */
export const RENDEZVOUS_PEER = -1;

/** What every member of one world shares: its id and its secret. */
export interface WorldCredentials {
  /** 16 hex digits, fresh per world */
  world: string;
  /** 32 random bytes */
  secret: Buffer;
}

interface DataHello { type: "data-hello"; protocol: number; world: string; from: number; to: number; nonce: string }
interface DataChallenge { type: "data-challenge"; nonce: string; proof: string }
interface DataAuth { type: "data-auth"; proof: string }

export type HandshakeStep =
  | { kind: "wait" }
  | { kind: "refused"; reason: string }
  /** `rest`: bytes that followed the handshake (the connection's first data). */
  | { kind: "done"; peer: number; rest: Buffer };

/** One side of the handshake: takes the connection's bytes, says what to send and where it stands. */
export interface HandshakeSide {
  /** Frames to send before any byte arrives (the dialler's hello). */
  readonly opening: Buffer[];
  push(chunk: Uint8Array): HandshakeStep;
}

function bindingOf(world: string, from: number, to: number): string {
  return `${world}\0${from}\0${to}`;
}

/** Shared by both sides: frames in, at most HANDSHAKE_FRAME_BYTES each, and one verdict. */
abstract class Side implements HandshakeSide {
  readonly opening: Buffer[] = [];
  private readonly reader = new FrameReader(HANDSHAKE_FRAME_BYTES);
  private over = false;

  constructor(protected readonly send: (frame: Buffer) => void) {}

  push(chunk: Uint8Array): HandshakeStep {
    if (this.over) return { kind: "refused", reason: "the handshake is over" };
    this.reader.append(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    // One frame at a time: the bytes after the last handshake frame are the connection's first data
    // (a peer done first may already be sending), to be handed on, not read as handshake frames.
    for (;;) {
      let frame: Buffer | undefined;
      let peer: number | undefined;
      try {
        frame = this.reader.next();
        if (frame === undefined) return { kind: "wait" };
        peer = this.step(frame);
      } catch (error) {
        return this.finish({ kind: "refused", reason: (error as Error).message });
      }
      if (peer !== undefined) return this.finish({ kind: "done", peer, rest: this.reader.drain() });
    }
  }

  private finish(step: HandshakeStep): HandshakeStep {
    this.over = true;
    return step;
  }

  /** One frame; returns the authenticated peer's rank once done. Throws what is wrong. */
  protected abstract step(frame: Buffer): number | undefined;
}

/** The side that dialled: it proves itself second, and is done once the acceptor welcomes it. */
export class DiallerSide extends Side {
  private phase: "challenge" | "welcome" = "challenge";
  private readonly nonce = freshNonce();
  private readonly binding: string;

  constructor(private readonly credentials: WorldCredentials, private readonly from: number, private readonly to: number, send: (frame: Buffer) => void) {
    super(send);
    this.binding = bindingOf(credentials.world, from, to);
    const hello: DataHello = { type: "data-hello", protocol: DATA_PROTOCOL, world: credentials.world, from, to, nonce: this.nonce };
    this.opening.push(encodeFrame(jsonFrame(hello)));
  }

  protected step(frame: Buffer): number | undefined {
    if (this.phase === "challenge") {
      const challenge = parseHandshake<DataChallenge>(frame, "data-challenge", { nonce: "string", proof: "string" });
      if (!proofMatches(challenge.proof, proofOf(this.credentials.secret, "rank-acceptor", this.nonce, challenge.nonce, this.binding))) {
        throw new Error("the peer's proof does not match: it does not hold this world's secret");
      }
      const auth: DataAuth = { type: "data-auth", proof: proofOf(this.credentials.secret, "rank-dialler", challenge.nonce, this.nonce, this.binding) };
      this.send(encodeFrame(jsonFrame(auth)));
      this.phase = "welcome";
      return undefined;
    }
    parseHandshake<{ type: "data-welcome" }>(frame, "data-welcome", {});
    return this.to;
  }
}

/**
 * The side that accepted: `admits(from)` says whether a rank may dial here now (in range, not
 * this rank, not connected yet), or why not.
 */
export class AcceptorSide extends Side {
  private hello?: DataHello;
  private readonly nonce = freshNonce();

  constructor(
    private readonly credentials: WorldCredentials,
    private readonly me: number,
    private readonly admits: (from: number) => string | undefined,
    send: (frame: Buffer) => void,
  ) {
    super(send);
  }

  protected step(frame: Buffer): number | undefined {
    if (!this.hello) {
      const hello = parseHandshake<DataHello>(frame, "data-hello", { protocol: "number", world: "string", from: "number", to: "number", nonce: "string" });
      if (hello.protocol !== DATA_PROTOCOL) throw new Error(`it speaks data protocol ${hello.protocol}, this rank ${DATA_PROTOCOL}`);
      if (hello.world !== this.credentials.world) throw new Error("it names another world (a stale or foreign rank)");
      if (hello.to !== this.me) throw new Error(`it dialled rank ${hello.to}, this is ${this.me === RENDEZVOUS_PEER ? "the rendezvous" : `rank ${this.me}`}`);
      const refusal = Number.isInteger(hello.from) ? this.admits(hello.from) : "its rank is not an integer";
      if (refusal !== undefined) throw new Error(refusal);
      this.hello = hello;
      const binding = bindingOf(hello.world, hello.from, hello.to);
      const challenge: DataChallenge = { type: "data-challenge", nonce: this.nonce, proof: proofOf(this.credentials.secret, "rank-acceptor", hello.nonce, this.nonce, binding) };
      this.send(encodeFrame(jsonFrame(challenge)));
      return undefined;
    }
    const auth = parseHandshake<DataAuth>(frame, "data-auth", { proof: "string" });
    const binding = bindingOf(this.hello.world, this.hello.from, this.hello.to);
    if (!proofMatches(auth.proof, proofOf(this.credentials.secret, "rank-dialler", this.nonce, this.hello.nonce, binding))) {
      throw new Error(`wrong secret: the proof of "rank ${this.hello.from}" does not match (a stranger, or a replayed handshake)`);
    }
    this.send(encodeFrame(jsonFrame({ type: "data-welcome" })));
    return this.hello.from;
  }
}

/** Where a handshake reads the connection's bytes: the socket's 'data', or a ReadBinding's interception. */
export interface ByteSource {
  /** Starts handing every byte to `take`; returns the switch that stops it. */
  listen(take: (chunk: Uint8Array) => void): () => void;
}

export function socketBytes(socket: Socket): ByteSource {
  return {
    listen(take) {
      socket.on("data", take);
      return () => socket.off("data", take);
    },
  };
}

/**
 * Runs `side` over `socket`: resolves with the authenticated peer and the bytes that followed,
 * rejects with the reason (the caller closes the socket and reports it). `timeoutMs` bounds the
 * wait, so a peer that connects and says nothing costs one timer.
 */
export function authenticate(socket: Socket, source: ByteSource, makeSide: (send: (frame: Buffer) => void) => HandshakeSide, timeoutMs: number): Promise<{ peer: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const side = makeSide((frame) => socket.write(frame));
    let settled = false;
    const settle = (result: { peer: number; rest: Buffer } | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop();
      socket.off("close", onClose);
      socket.off("error", onError);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onClose = () => settle(new Error("it closed the connection before authenticating"));
    const onError = (error: Error) => settle(new Error(`connection error before authenticating: ${error.message}`));
    const timer = setTimeout(() => settle(new Error(`it did not authenticate within ${(timeoutMs / 1000).toFixed(1)} s`)), timeoutMs);
    socket.once("close", onClose);
    socket.once("error", onError);
    const stop = source.listen((chunk) => {
      const step = side.push(chunk);
      if (step.kind === "refused") settle(new Error(step.reason));
      else if (step.kind === "done") settle({ peer: step.peer, rest: step.rest });
    });
    for (const frame of side.opening) socket.write(frame);
  });
}
