// One peer of a tcp world as its transport (tcp-transport.ts) sees it: the
// connection its frames leave on, the one they arrive on, the inbox that
// sorts what arrives, and the writing of frames.
//
// A frame that fits one write goes out at once, header and payload corked
// into one system call, when nothing is queued on the connection: a small
// collective's frames cost one `writev` and no promise. Larger or paced
// frames are cut into writes that respect backpressure and queue on the
// connection one after another, so frames never interleave. A send is done,
// and its caller may change the payload, only once the kernel has taken
// every byte: the socket holds views of the payload, not copies.
import type { Socket } from "node:net";
import type { Part } from "./countdown";
import type { Descriptor } from "./descriptor";
import { Pacer, type Nic } from "./link";
import { encodeHeader } from "./tcp-frames";
import type { Inbox } from "./tcp-inbox";
import { FRAME_HEADER_BYTES, type CallContext, type SendSpec } from "./transport";
import type { WireCounters } from "./wire-counters";

/** Bytes a write takes at most, and the grain of an unpaced frame's payload. */
const WRITE_BYTES = 1024 * 1024;
/**
 * Bytes handed to the socket but not yet to the kernel before a sender
 * waits. Waiting for 'drain' after every write would let the kernel's send
 * buffer run dry while the event loop comes round; keeping a few writes
 * queued keeps the connection busy (each write's callback frees its bytes).
 */
const IN_FLIGHT_BYTES = 4 * 1024 * 1024;

/** What the link needs of its transport. */
export interface LinkContext {
  /** the error a call fails with now (the world stopped), or undefined */
  refused(call: CallContext): Error | undefined;
  /**
   * A write to the peer failed (EPIPE, reset: it is gone): the error the send fails with, after
   * the transport stopped the world for the lost peer. A write's callback can report this before
   * the socket's own 'error' and 'close' do, and the call must fail as every other call does.
   */
  writeFailed(call: CallContext, error: unknown): Error;
  wire: WireCounters;
  /** the rank's emulated network interface: every paced send shares its egress */
  nic: Nic;
}

export class PeerLink {
  /** the sends that write in steps (large, paced, or queued behind another), one after another */
  private sendQueue: Promise<void> = Promise.resolve();
  /** sends in sendQueue not finished yet: while there are any, a new send queues behind them */
  private queuedSends = 0;
  /** when a byte last moved on either connection (performance.now() ms), for timeouts */
  lastActivity = performance.now();
  /** bytes written to the socket whose write callback has not run yet */
  private inFlight = 0;
  /** a sender waiting for inFlight to drop under IN_FLIGHT_BYTES */
  private wakeSender?: () => void;

  constructor(
    /** the peer's world rank */
    readonly peer: number,
    /** the connection the peer opened; this rank's frames leave on it */
    readonly send: Socket,
    /** the connection this rank opened; the peer's frames arrive on it */
    readonly recv: Socket,
    readonly inbox: Inbox,
    private readonly context: LinkContext,
  ) {}

  /** Sends one frame of `call`; `part` reports once the kernel has taken every byte. */
  sendFrame(call: CallContext, spec: SendSpec, frameContext: number, part: Part): void {
    const refused = this.context.refused(call);
    if (refused) return part.fail(refused);
    const { wire } = this.context;
    const payload = spec.payload;
    if (!call.link && this.queuedSends === 0 && payload.length <= WRITE_BYTES && this.inFlight < IN_FLIGHT_BYTES) {
      const bytes = FRAME_HEADER_BYTES + payload.length;
      this.inFlight += bytes;
      this.send.cork();
      this.send.write(encodeHeader(call.desc, payload.length, frameContext));
      this.send.write(payload, (err) => {
        this.sentToKernel(bytes);
        if (err) part.fail(this.context.writeFailed(call, err));
        else part.done();
      });
      this.send.uncork();
      wire.sent(call, this.peer, 0, 1, FRAME_HEADER_BYTES);
      if (payload.length > 0) wire.sent(call, this.peer, payload.length, 0);
      return;
    }
    this.queuedSends++;
    const run = async () => {
      const refused = this.context.refused(call);
      if (refused) throw refused;
      const pacer = call.link ? new Pacer(call.link, payload.length, this.context.nic, performance.now(), this.peer) : undefined;
      if (pacer) await pacer.whenAllowed(0); // the latency
      let flushed = Promise.resolve();
      const put = async (bytes: Uint8Array) => {
        const w = this.write(bytes);
        flushed = w.flushed;
        await w.room;
      };
      await put(encodeHeader(call.desc, payload.length, frameContext));
      wire.sent(call, this.peer, 0, 1, FRAME_HEADER_BYTES);
      // paced links write in ~1 ms grains so the bytes leave at the emulated bandwidth
      const grain = pacer ? Math.max(4096, Math.min(WRITE_BYTES, Math.floor(call.link!.bandwidth * 0.001))) : WRITE_BYTES;
      for (let at = 0; at < payload.length; at += grain) {
        const end = Math.min(payload.length, at + grain);
        if (pacer) await pacer.whenAllowed(end);
        await put(payload.subarray(at, end));
        wire.sent(call, this.peer, end - at, 0);
      }
      // writes complete in order: the last one flushed is the frame flushed
      await flushed;
    };
    const done = this.sendQueue.then(run);
    this.sendQueue = done.then(
      () => {
        this.queuedSends--;
        part.done();
      },
      (e) => {
        this.queuedSends--;
        part.fail(this.context.writeFailed(call, e));
      },
    );
  }

  /** Writes a control frame (a probe, a probe's answer) behind any frame being written, so frames never interleave. */
  sendControl(desc: Descriptor, frameContext: number, body?: Uint8Array): void {
    this.sendQueue = this.sendQueue.then(() => {
      if (this.send.destroyed) return;
      this.send.write(encodeHeader(desc, body?.length ?? 0, frameContext));
      if (body) this.send.write(body);
    });
  }

  /** room: resolves when the sender may write more; flushed: when the kernel has taken these bytes. */
  private write(bytes: Uint8Array): { room: Promise<void>; flushed: Promise<void> } {
    let roomResolve!: () => void;
    const room = new Promise<void>((resolve) => (roomResolve = resolve));
    const flushed = new Promise<void>((resolve, reject) => {
      this.inFlight += bytes.length;
      this.send.write(bytes, (err) => {
        this.sentToKernel(bytes.length);
        if (err) reject(err);
        else resolve();
      });
    });
    if (this.inFlight < IN_FLIGHT_BYTES) roomResolve();
    else this.wakeSender = roomResolve;
    // an error surfaces through flushed; room must not stay pending on it
    flushed.catch(() => roomResolve());
    return { room, flushed };
  }

  /** `bytes` written have reached the kernel: a sender waiting for room may go on. */
  private sentToKernel(bytes: number): void {
    this.inFlight -= bytes;
    if (this.inFlight < IN_FLIGHT_BYTES && this.wakeSender) {
      const wake = this.wakeSender;
      this.wakeSender = undefined;
      wake();
    }
  }
}
