// Incoming byte stream of one TCP connection -> frames. A frame is the
// 48-byte header of transport.ts (magic, descriptor, payload bytes,
// context) and its payload. The socket reads into memory this class
// chooses (net.Socket's `onread`): a 64 KiB staging buffer for headers and
// small payloads, and, once a frame's destination is known and more than
// DIRECT_MIN_BYTES of its payload are still to come, straight into that
// destination (the receive's array, or the arena scratch a reduction reads
// from), so large payloads cost no copy in JavaScript and reads are as large
// as the kernel has bytes for, not Node's 64 KiB. Payload pieces are handed
// on re-cut so that each starts at a multiple of 16 bytes of the payload and
// (but for the last) is a multiple of 16 bytes long, as RecvSpec promises.
import { DESCRIPTOR_WORDS, readDescriptor, writeDescriptor, type Descriptor } from "./descriptor";
import { FRAME_HEADER_BYTES, FRAME_HEADER_WORDS, FRAME_MAGIC } from "./transport";

export const CONTEXT_COLLECTIVE = 0;
export const CONTEXT_USER = 1;
/** A rank stopping the world; the payload is the UTF-8 reason, root = 1 for a mismatch, 2 for a lost peer. */
export const CONTEXT_ABORT = 2;
/** A rank whose wait timed out asks each peer where it is (no payload). */
export const CONTEXT_PROBE = 3;
/** The answer to a probe: the descriptor of the peer's current call (call 0: none) and a UTF-8 line saying what it waits for. */
export const CONTEXT_PROBE_REPLY = 4;

/** bytes of the buffer headers and small payloads are read into */
const STAGING_BYTES = 64 * 1024;
/** payload still to come, bytes, above which the socket reads straight into the destination */
const DIRECT_MIN_BYTES = 16 * 1024;

/** Where one frame's payload goes. */
export interface PayloadSink {
  /**
   * Memory to read payload bytes [offset, offset + length) straight into,
   * at most maxBytes (offset is a multiple of 16), or undefined to use the
   * staging buffer.
   */
  into?(offset: number, maxBytes: number): Uint8Array | undefined;
  /** the next piece of payload; `piece` may view the memory into() gave, or the staging buffer (valid during the call only) */
  data(piece: Uint8Array, offset: number): void;
}

export interface FrameSink {
  /** a new frame's header; returns where its payload goes */
  start(context: number, desc: Descriptor, payloadBytes: number): PayloadSink;
  /** the current frame is complete */
  end(): void;
}

export function encodeHeader(desc: Descriptor, payloadBytes: number, context: number): Uint8Array {
  const words = new Int32Array(FRAME_HEADER_WORDS);
  words[0] = FRAME_MAGIC;
  writeDescriptor(words, 1, desc);
  words[9] = payloadBytes;
  words[10] = context;
  return new Uint8Array(words.buffer);
}

/**
 * Drives a socket's `onread`: `buffer()` says where the next read goes,
 * `received(n)` takes the n bytes that landed there. Every byte read is
 * handed on (or kept in `carry`, at most 15) before received() returns, so
 * memory given to one socket's reads may also serve another socket's.
 */
export class FrameReceiver {
  private readonly staging = new Uint8Array(STAGING_BYTES);
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private remaining = -1; // payload bytes still to come; -1 = reading a header
  private offset = 0; // payload bytes handed on so far (a multiple of 16 until the last piece)
  private readonly carry = new Uint8Array(16);
  private carryFill = 0;
  private sink?: PayloadSink;
  /** the destination memory the pending read goes to (its first carryFill bytes are the carry), if not staging */
  private region?: Uint8Array;

  constructor(
    private readonly frames: FrameSink,
    private readonly peer: number,
  ) {}

  /** The memory for the socket's next read. */
  buffer(): Uint8Array {
    this.region = undefined;
    if (this.remaining > DIRECT_MIN_BYTES && this.sink?.into) {
      const want = this.carryFill + this.remaining;
      const given = this.sink.into(this.offset, want);
      if (given && given.length > this.carryFill + 64) {
        // never past the frame's end: the next header must go through staging
        this.region = given.length > want ? given.subarray(0, want) : given;
        return this.region.subarray(this.carryFill);
      }
    }
    return this.staging;
  }

  /** n bytes arrived in the memory buffer() last returned. */
  received(n: number): void {
    const region = this.region;
    if (!region) return this.push(this.staging.subarray(0, n));
    this.region = undefined;
    // the carry goes in front of the new bytes now, not when the region was handed out: until this
    // read completed, other sockets' reads may have used the same memory
    if (this.carryFill > 0) region.set(this.carry.subarray(0, this.carryFill), 0);
    const have = this.carryFill + n;
    this.remaining -= n;
    const last = this.remaining === 0;
    const whole = last ? have : have & ~15;
    this.carryFill = have - whole;
    if (this.carryFill > 0) this.carry.set(region.subarray(whole, have), 0);
    if (whole > 0) this.emit(region.subarray(0, whole));
    if (last) this.finish();
  }

  /** Bytes read into staging (or handed over directly, as tests do). */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining < 0) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - at);
        this.header.set(chunk.subarray(at, at + n), this.headerFill);
        this.headerFill += n;
        at += n;
        if (this.headerFill === FRAME_HEADER_BYTES) this.startFrame();
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - at);
      this.payload(chunk.subarray(at, at + n));
      at += n;
    }
  }

  private startFrame(): void {
    const words = new Int32Array(this.header.slice().buffer);
    if (words[0] !== FRAME_MAGIC) throw new Error(`connection from rank ${this.peer}: corrupt frame header`);
    this.headerFill = 0;
    this.remaining = words[9];
    this.offset = 0;
    this.carryFill = 0;
    this.sink = this.frames.start(words[10], readDescriptor(words.subarray(1, 1 + DESCRIPTOR_WORDS), 0), words[9]);
    if (this.remaining === 0) this.finish();
  }

  private payload(piece: Uint8Array): void {
    this.remaining -= piece.length;
    const last = this.remaining === 0;
    if (this.carryFill > 0) {
      const n = Math.min(16 - this.carryFill, piece.length);
      this.carry.set(piece.subarray(0, n), this.carryFill);
      this.carryFill += n;
      piece = piece.subarray(n);
      if (this.carryFill === 16 || (last && piece.length === 0)) {
        this.emit(this.carry.slice(0, this.carryFill));
        this.carryFill = 0;
      }
    }
    const whole = last ? piece.length : piece.length & ~15;
    if (whole > 0) this.emit(piece.subarray(0, whole));
    const rest = piece.length - whole;
    if (rest > 0) {
      this.carry.set(piece.subarray(whole), 0);
      this.carryFill = rest;
    }
    if (last) this.finish();
  }

  private emit(piece: Uint8Array): void {
    this.sink!.data(piece, this.offset);
    this.offset += piece.length;
  }

  private finish(): void {
    this.remaining = -1;
    this.sink = undefined;
    this.frames.end();
  }
}

/** What a connection's reads are handed to once its transport exists. */
export interface ReadTarget {
  /** memory for the next read */
  buffer(): Uint8Array;
  /** n bytes arrived in the memory buffer() last gave */
  received(n: number): void;
  /** bytes read before the target was attached, in order */
  push(chunk: Uint8Array): void;
}

/**
 * The `onread` option of a connection opened before its transport exists
 * (net.connect needs it up front): reads go to the target attached later;
 * bytes read before that (a fast peer's first frame) are kept and replayed.
 */
export class ReadBinding {
  private target?: ReadTarget;
  private early: Uint8Array[] = [];
  private readonly beforeAttach = new Uint8Array(STAGING_BYTES);
  /** whether the buffer of the pending read came from the target */
  private targetBuffer = false;
  /** takes every byte while the connection authenticates (data-handshake.ts) */
  private interceptor?: (chunk: Uint8Array) => void;

  readonly onread = {
    buffer: (): Uint8Array => {
      this.targetBuffer = this.target !== undefined && this.interceptor === undefined;
      return this.targetBuffer ? this.target!.buffer() : this.beforeAttach;
    },
    callback: (n: number): boolean => {
      if (this.targetBuffer) this.target!.received(n);
      else this.push(this.beforeAttach.subarray(0, n));
      return true;
    },
  };

  /**
   * Bytes that did not come through `onread` (a TLS socket's decrypted 'data'); `chunk` may be
   * reused by the caller once push returns.
   */
  push(chunk: Uint8Array): void {
    if (this.interceptor) this.interceptor(chunk.slice());
    else if (this.target) this.target.push(chunk);
    else this.early.push(chunk.slice());
  }

  /** Hands every byte read (those already waiting too) to `take` until release(). */
  intercept(take: (chunk: Uint8Array) => void): void {
    this.interceptor = take;
    for (const chunk of this.early.splice(0)) take(chunk);
  }

  /** Ends intercept(); `rest` (bytes the interceptor read past its own) goes first to the target. */
  release(rest: Uint8Array): void {
    this.interceptor = undefined;
    if (rest.byteLength === 0) return;
    if (this.target) this.target.push(rest);
    else this.early.unshift(rest);
  }

  attach(target: ReadTarget): void {
    this.target = target;
    for (const chunk of this.early.splice(0)) target.push(chunk);
  }
}
