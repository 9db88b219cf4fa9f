// The receiving side of one TCP connection: frames (from the connection's
// FrameReceiver) matched to receives (posted by the transport). A frame
// meets the first receive posted for its context and streams into it; a
// frame that arrives first is kept, in memory of its own, until a receive
// claims it (then what has arrived is handed over and the rest streams in).
import type { Descriptor } from "./descriptor";
import { CONTEXT_ABORT, type FrameSink, type PayloadSink } from "./tcp-frames";
import type { CallContext, RecvSpec } from "./transport";

export interface Pending {
  spec: RecvSpec;
  call: CallContext;
  /** throws when the sender's frame does not match this receive */
  check(sender: Descriptor, payloadBytes: number): void;
  resolve(): void;
  reject(e: unknown): void;
}

/** A frame that arrived before a receive claimed it: its payload is kept in `bytes`. */
interface Arrived {
  desc: Descriptor;
  bytes: Uint8Array;
  /** payload bytes in `bytes` so far */
  filled: number;
  complete: boolean;
  incoming: Incoming;
}

/** The frame the connection is receiving now: for a posted receive, kept as arrived, or dropped (neither). */
interface Incoming {
  context: number;
  pending?: Pending;
  arrived?: Arrived;
  /** an arrived frame's memory, given back when a receive that claimed it mid-stream completes */
  kept?: Uint8Array;
}

export interface InboxEvents {
  /** A control frame (CONTEXT_ABORT and above: stop, probe, probe reply) with its UTF-8 body. */
  control(context: number, desc: Descriptor, body: string): void;
  /**
   * Payload bytes and messages handed to a receive of `call` (a frame counts once a receive
   * takes it; what arrived before that counts when the receive claims it).
   */
  count?(call: CallContext, bytes: number, messages: number): void;
  /** The error for a receive of an ended cell: `why` says how we know it ended. */
  ended(call: CallContext, why: string): Error;
  /**
   * Bytes of a data frame (not a control frame) arrived: what a wait's timeout counts as the peer
   * being alive. Probes and their answers flow while ranks wait and must not keep a wait from timing out.
   */
  activity?(): void;
}

export class Inbox implements FrameSink {
  /** frames by context that arrived before a receive claimed them */
  private readonly arrived: Arrived[][] = [[], []];
  /** receives waiting, per context, in posting order */
  private readonly pending: Pending[][] = [[], []];
  private current?: Incoming;
  /**
   * Memory of the last kept frame, reused for the next: in a ring, a fast
   * peer's next step often arrives before this rank posts its receive, and
   * fresh memory costs a page fault per 4 KiB (first touch runs at about a
   * quarter of copy speed).
   */
  private spare?: Uint8Array;
  /** The newest epoch (cell) this rank has made a call in: frames of older epochs are dropped. */
  private epoch = 0;

  constructor(private readonly events: InboxEvents) {}

  private count(call: CallContext, bytes: number, messages: number): void {
    this.events.count?.(call, bytes, messages);
  }

  /**
   * This rank made a call of `epoch`: the frames kept from older epochs are
   * dropped (nobody of an ended cell will receive them) and receives of
   * older epochs still waiting end with an error.
   */
  advance(epoch: number): void {
    if (epoch <= this.epoch) return;
    this.epoch = epoch;
    for (const queue of this.arrived) {
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i].desc.epoch < epoch) this.drop(queue.splice(i, 1)[0]);
    }
    const why = `it was still waiting when this rank began cell ${epoch}`;
    for (const queue of this.pending) {
      const keep = queue.splice(0).filter((p) => p.call.desc.epoch >= epoch || (p.reject(this.events.ended(p.call, why)), false));
      queue.push(...keep);
    }
    const streaming = this.current?.pending;
    if (streaming && streaming.call.desc.epoch < epoch) {
      this.current!.pending = undefined; // the rest of its frame is dropped
      streaming.reject(this.events.ended(streaming.call, why));
    }
  }

  /** A kept frame nobody will take: the rest of it (if still arriving) is dropped too. */
  private drop(frame: Arrived): void {
    if (!frame.complete) frame.incoming.arrived = undefined;
  }

  /** A receive: it claims the first kept frame of its context, or waits for the next to arrive. */
  post(context: number, pending: Pending): void {
    const queue = this.arrived[context];
    const epoch = pending.call.desc.epoch;
    while (queue.length > 0 && queue[0].desc.epoch < epoch) this.drop(queue.shift()!);
    if (queue.length > 0 && queue[0].desc.epoch > epoch) {
      return pending.reject(this.events.ended(pending.call, `the sender had already begun cell ${queue[0].desc.epoch}`));
    }
    const early = queue.shift();
    if (!early) {
      this.pending[context].push(pending);
      return;
    }
    try {
      pending.check(early.desc, early.bytes.length);
      pending.spec.onStart?.(early.bytes.length);
      this.count(pending.call, early.filled, 1);
      if (early.filled > 0) pending.spec.onData(early.bytes.subarray(0, early.filled), 0);
      if (early.complete) {
        this.keepSpare(early.bytes);
        return pending.resolve();
      }
      // the rest streams in to this receive
      early.incoming.arrived = undefined;
      early.incoming.pending = pending;
      early.incoming.kept = early.bytes;
    } catch (e) {
      if (!early.complete) early.incoming.arrived = undefined; // drop the rest
      pending.reject(e);
    }
  }

  /** Ends every waiting receive with `reason(call)`. */
  rejectAll(reason: (call: CallContext) => Error): void {
    for (const queue of this.pending) for (const p of queue.splice(0)) p.reject(reason(p.call));
    if (this.current?.pending) this.current.pending.reject(reason(this.current.pending.call));
  }

  start(context: number, desc: Descriptor, payloadBytes: number): PayloadSink {
    const cur: Incoming = { context };
    this.current = cur;
    const control = context >= CONTEXT_ABORT;
    if (!control) this.events.activity?.();
    if (!control && desc.epoch < this.epoch) return { data: () => undefined }; // a frame of an ended cell: dropped
    if (!control) {
      // receives of cells older than the sender's: the kernel began the sender's cell after theirs ended
      const queue = this.pending[context];
      while (queue.length > 0 && queue[0].call.desc.epoch < desc.epoch) {
        const old = queue.shift()!;
        old.reject(this.events.ended(old.call, `the sender had already begun cell ${desc.epoch}`));
      }
    }
    const pending = control ? undefined : this.pending[context].shift();
    if (pending) {
      try {
        pending.check(desc, payloadBytes);
        pending.spec.onStart?.(payloadBytes);
        this.count(pending.call, 0, 1);
        cur.pending = pending;
      } catch (e) {
        pending.reject(e); // and the payload is dropped
      }
    } else {
      cur.arrived = this.arrival(cur, desc, payloadBytes);
      if (!control) this.arrived[context].push(cur.arrived);
    }
    return {
      into: (offset, maxBytes) => (cur.pending ? cur.pending.spec.into?.(offset, maxBytes) : cur.arrived?.bytes.subarray(offset, offset + maxBytes)),
      data: (piece, offset) => {
        if (!control) this.events.activity?.();
        if (cur.pending) {
          this.count(cur.pending.call, piece.length, 0);
          cur.pending.spec.onData(piece, offset);
        }
        else if (cur.arrived) {
          const a = cur.arrived;
          if (piece.buffer !== a.bytes.buffer || piece.byteOffset !== a.bytes.byteOffset + offset) a.bytes.set(piece, offset);
          a.filled = offset + piece.length;
        }
      },
    };
  }

  end(): void {
    const cur = this.current!;
    this.current = undefined;
    if (cur.context >= CONTEXT_ABORT && cur.arrived) {
      // a control frame's memory is its own (the spare may be handed out again before the handler is done)
      this.events.control(cur.context, cur.arrived.desc, new TextDecoder().decode(cur.arrived.bytes.slice()));
      return;
    }
    if (cur.kept) this.keepSpare(cur.kept);
    if (cur.pending) cur.pending.resolve();
    else if (cur.arrived) cur.arrived.complete = true;
  }

  private arrival(incoming: Incoming, desc: Descriptor, payloadBytes: number): Arrived {
    let bytes: Uint8Array;
    if (this.spare && this.spare.length >= payloadBytes) {
      bytes = this.spare.subarray(0, payloadBytes);
      this.spare = undefined;
    } else {
      bytes = new Uint8Array(payloadBytes);
    }
    return { desc, bytes, filled: 0, complete: false, incoming };
  }

  private keepSpare(bytes: Uint8Array): void {
    if (!this.spare || this.spare.length < bytes.length) this.spare = bytes;
  }
}
