// One direction of a shared-memory channel: a ring of bytes in shared
// memory with a written and a read counter (mod 2^32, always multiples of
// 16 bytes). A message is a 48-byte frame header followed by its payload,
// padded to 16 bytes, so typed views of any dtype stay aligned. Sends and
// receives advance as far as the ring allows and return; the transport
// loops over them (see shm-transport.ts).
import { FRAME_HEADER_BYTES, FRAME_HEADER_WORDS, FRAME_MAGIC, type RecvSpec } from "./transport";
import { DESCRIPTOR_WORDS, readDescriptor, writeDescriptor, type Descriptor } from "./descriptor";
import type { Pacer } from "./link";
import { READ, WRITTEN, type ShmLayout } from "./shm-layout";

export interface ChannelMemory {
  ctl: Int32Array;
  data: Uint8Array;
  layout: ShmLayout;
}

const align16 = (n: number) => (n + 15) & ~15;

/**
 * Told what a channel op just copied into or out of the ring: payload bytes,
 * framing bytes (frame header and padding to 16 bytes; counted by senders
 * only) and messages (1 when a frame's header moves, else 0).
 */
export type ChannelCount = (payloadBytes: number, framingBytes: number, messages: number) => void;

abstract class ChannelOp {
  done = false;
  protected readonly ringAt: number;
  protected readonly mask: number;
  protected readonly writtenWord: number;
  protected readonly readWord: number;
  constructor(
    protected readonly mem: ChannelMemory,
    channel: number,
    context: number,
    readonly peer: number,
  ) {
    this.ringAt = mem.layout.ringAt(channel);
    this.mask = mem.layout.ringBytes(context) - 1;
    this.writtenWord = mem.layout.channelWord(channel, WRITTEN);
    this.readWord = mem.layout.channelWord(channel, READ);
  }
}

export class ChannelSend extends ChannelOp {
  private sent = 0; // bytes of header + padded payload already in the ring
  private readonly total: number;
  private readonly header: Uint8Array;

  constructor(
    mem: ChannelMemory,
    channel: number,
    context: number,
    peer: number,
    desc: Descriptor,
    private readonly payload: Uint8Array,
    readonly pacer?: Pacer,
    private readonly count?: ChannelCount,
  ) {
    super(mem, channel, context, peer);
    const words = new Int32Array(FRAME_HEADER_WORDS);
    words[0] = FRAME_MAGIC;
    writeDescriptor(words, 1, desc);
    words[9] = payload.length;
    this.header = new Uint8Array(words.buffer);
    this.total = FRAME_HEADER_BYTES + align16(payload.length);
  }

  /** Moves what fits into the ring; true if anything moved. */
  progress(nowMs: number): boolean {
    if (this.done) return false;
    const { ctl } = this.mem;
    const capacity = this.mask + 1;
    const written = ctl[this.writtenWord]; // only this side writes it
    const free = capacity - ((written - Atomics.load(ctl, this.readWord)) | 0);
    let limit = this.total;
    if (this.pacer) {
      const allowed = this.pacer.allowed(nowMs);
      if (allowed < 0) return false;
      if (allowed < this.payload.length) limit = FRAME_HEADER_BYTES + (allowed & ~15);
    }
    if (this.sent === 0 && free < FRAME_HEADER_BYTES) return false;
    const n = Math.min(free, limit - this.sent);
    if (n <= 0) return false;
    this.copyOut(this.sent, n, written);
    if (this.count) {
      const payload = Math.max(0, Math.min(this.sent + n, FRAME_HEADER_BYTES + this.payload.length) - Math.max(this.sent, FRAME_HEADER_BYTES));
      this.count(payload, n - payload, this.sent === 0 ? 1 : 0);
    }
    this.sent += n;
    Atomics.store(ctl, this.writtenWord, (written + n) | 0);
    this.done = this.sent === this.total;
    return true;
  }

  /** Whether any byte of the frame is in the ring (a frame once begun must be finished: the ring has no other framing). */
  get started(): boolean {
    return this.sent > 0;
  }

  /** Payload bytes already in the ring, for pacing. */
  payloadSent(): number {
    return Math.max(0, Math.min(this.payload.length, this.sent - FRAME_HEADER_BYTES));
  }

  private copyOut(from: number, n: number, written: number): void {
    const end = from + n;
    // header part
    if (from < FRAME_HEADER_BYTES) {
      const to = Math.min(end, FRAME_HEADER_BYTES);
      this.toRing(this.header.subarray(from, to), written);
    }
    const payloadFrom = Math.max(from, FRAME_HEADER_BYTES) - FRAME_HEADER_BYTES;
    const payloadTo = Math.min(end - FRAME_HEADER_BYTES, this.payload.length);
    if (payloadTo > payloadFrom) {
      this.toRing(this.payload.subarray(payloadFrom, payloadTo), written + (payloadFrom + FRAME_HEADER_BYTES - from));
    }
  }

  private toRing(src: Uint8Array, counter: number): void {
    const pos = counter & this.mask;
    const first = Math.min(src.length, this.mask + 1 - pos);
    const data = this.mem.data;
    data.set(first === src.length ? src : src.subarray(0, first), this.ringAt + pos);
    if (first < src.length) data.set(src.subarray(first), this.ringAt);
  }
}

/** Checks an arriving frame's descriptor against the receiver's; throws to refuse it. */
export type FrameCheck = (sender: Descriptor, payloadBytes: number) => void;

/** A frame of a later epoch (cell) met a receive of an earlier one: the receive's cell is over. */
export type EpochEnded = (senderEpoch: number) => Error;

export class ChannelRecv extends ChannelOp {
  private taken = 0; // stream bytes consumed (header + padded payload)
  private payloadBytes = -1;
  private total = Infinity;
  /** the frame being consumed is of an older epoch (an ended cell's): its bytes are skipped, not delivered */
  private dropping = false;
  private readonly headerWords = new Int32Array(FRAME_HEADER_WORDS);

  constructor(
    mem: ChannelMemory,
    channel: number,
    context: number,
    peer: number,
    private readonly spec: RecvSpec,
    private readonly check: FrameCheck,
    private readonly count?: ChannelCount,
    /** the receiving call's epoch and what to throw when a later epoch's frame comes first */
    private readonly epoch = 0,
    private readonly ended?: EpochEnded,
  ) {
    super(mem, channel, context, peer);
  }

  /** Whether this receive has taken a frame's header from the ring (it then consumes the whole frame). */
  get started(): boolean {
    return this.payloadBytes >= 0;
  }

  progress(): boolean {
    if (this.done) return false;
    const { ctl, data } = this.mem;
    const read = ctl[this.readWord]; // only this side writes it
    let available = (Atomics.load(ctl, this.writtenWord) - read) | 0;
    if (available === 0) return false;
    let cursor = read;
    if (this.payloadBytes < 0) {
      if (available < FRAME_HEADER_BYTES) return false;
      const bytes = new Uint8Array(this.headerWords.buffer);
      for (let i = 0; i < FRAME_HEADER_BYTES; i++) bytes[i] = data[this.ringAt + ((cursor + i) & this.mask)];
      const words = this.headerWords;
      if (words[0] !== FRAME_MAGIC) throw new Error(`shm channel from rank ${this.peer}: corrupt frame header`);
      const sender = readDescriptor(words.subarray(1, 1 + DESCRIPTOR_WORDS), 0);
      // a later cell's frame stays in the ring for that cell's receive
      if (sender.epoch > this.epoch && this.ended) throw this.ended(sender.epoch);
      this.payloadBytes = words[9];
      this.dropping = sender.epoch < this.epoch;
      if (!this.dropping) {
        this.check(sender, this.payloadBytes);
        this.spec.onStart?.(this.payloadBytes);
        this.count?.(0, 0, 1);
      }
      this.total = FRAME_HEADER_BYTES + align16(this.payloadBytes);
      this.taken = FRAME_HEADER_BYTES;
      cursor = (cursor + FRAME_HEADER_BYTES) | 0;
      available -= FRAME_HEADER_BYTES;
    }
    const n = Math.min(available, this.total - this.taken);
    if (n > 0) {
      const payloadFrom = this.taken - FRAME_HEADER_BYTES;
      const payloadTo = Math.min(payloadFrom + n, this.payloadBytes);
      if (payloadTo > payloadFrom && !this.dropping) {
        this.deliver(payloadFrom, payloadTo - payloadFrom, cursor);
        this.count?.(payloadTo - payloadFrom, 0, 0);
      }
      this.taken += n;
      cursor = (cursor + n) | 0;
    }
    Atomics.store(ctl, this.readWord, cursor);
    if (this.dropping && this.taken === this.total) {
      // an ended cell's frame is gone from the ring: read the next one
      this.dropping = false;
      this.payloadBytes = -1;
      this.total = Infinity;
      this.taken = 0;
      return true;
    }
    this.done = this.taken === this.total;
    return true;
  }

  private deliver(payloadOffset: number, n: number, counter: number): void {
    const pos = counter & this.mask;
    const first = Math.min(n, this.mask + 1 - pos);
    const buffer = this.mem.data.buffer;
    this.spec.onData(new Uint8Array(buffer, this.ringAt + pos, first), payloadOffset);
    if (first < n) this.spec.onData(new Uint8Array(buffer, this.ringAt, n - first), payloadOffset + first);
  }
}
