// Incoming byte stream of one TCP connection -> frames. A frame is the
// 48-byte header of transport.ts (magic, descriptor, payload bytes,
// context) and its payload. Payload pieces are handed on as they arrive,
// re-cut so that each piece starts at a multiple of 16 bytes of the payload
// and (but for the last) is a multiple of 16 bytes long, as RecvSpec promises.
import { DESCRIPTOR_WORDS, readDescriptor, type Descriptor } from "./descriptor";
import { FRAME_HEADER_BYTES, FRAME_HEADER_WORDS, FRAME_MAGIC } from "./transport";

export const CONTEXT_COLLECTIVE = 0;
export const CONTEXT_USER = 1;
/** A rank stopping the world; the payload is the UTF-8 reason, root = 1 for a mismatch, 2 for a lost peer. */
export const CONTEXT_ABORT = 2;

export interface FrameSink {
  /** a new frame's header */
  start(context: number, desc: Descriptor, payloadBytes: number): void;
  /** the next piece of the current frame's payload */
  data(piece: Uint8Array, offset: number): void;
  /** the current frame is complete */
  end(): void;
}

export function encodeHeader(desc: Descriptor, payloadBytes: number, context: number): Uint8Array {
  const words = new Int32Array(FRAME_HEADER_WORDS);
  words[0] = FRAME_MAGIC;
  words[1] = desc.group; words[2] = desc.call; words[3] = desc.opcode; words[4] = desc.count;
  words[5] = desc.dtype; words[6] = desc.root; words[7] = desc.redop; words[8] = desc.algorithm;
  words[9] = payloadBytes;
  words[10] = context;
  return new Uint8Array(words.buffer);
}

export class FrameReader {
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private remaining = -1; // payload bytes still to come; -1 = reading a header
  private offset = 0; // payload bytes delivered so far
  private readonly carry = new Uint8Array(16);
  private carryFill = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly peer: number,
  ) {}

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
    this.sink.start(words[10], readDescriptor(words.subarray(1, 1 + DESCRIPTOR_WORDS), 0), words[9]);
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
    this.sink.data(piece, this.offset);
    this.offset += piece.length;
  }

  private finish(): void {
    this.remaining = -1;
    this.sink.end();
  }
}
