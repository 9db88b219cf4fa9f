// The counting side of WireStats (wire-stats.ts): one WireCounters per rank,
// shared by its world communicator and every group, fed by the transports
// where bytes move. Each count also goes to the call being served
// (CallContext.traffic), which the communicator puts on the call's span.
//
// The direct path (shm-direct.ts) has no send: a rank reads its peers'
// shared memory in place. The reader counts what it read as received, and
// adds it to the world's SharedReadCounts, a matrix in shared memory of
// [owner][reader][opcode] -> (bytes, messages); the owner's bytes sent are
// its row of that matrix, so they too are what was actually read.
import { OPCODES } from "./descriptor";
import type { CallContext } from "./transport";
import { emptyWireStats, zeroTraffic, type OpTraffic, type TrafficCounts, type WireStats } from "./wire-stats";

function addTo(target: TrafficCounts, from: TrafficCounts): void {
  target.bytesSent += from.bytesSent;
  target.bytesReceived += from.bytesReceived;
  target.messagesSent += from.messagesSent;
  target.messagesReceived += from.messagesReceived;
}

export class WireCounters {
  private stats: WireStats;
  /** the direct path's shared matrix of the world this rank is in now, and this rank's row of it at the last reset */
  private shared?: { counts: SharedReadCounts; baseline: BigInt64Array };

  constructor(readonly rank: number) {
    this.stats = emptyWireStats(rank);
  }

  /** `bytes` of payload and `messages` left this rank for world rank `peer` in `call`; `framing`: header bytes that went with them. */
  sent(call: CallContext, peer: number, bytes: number, messages: number, framing = 0): void {
    const delta = { bytesSent: bytes, bytesReceived: 0, messagesSent: messages, messagesReceived: 0 };
    this.add(call.op, peer, delta);
    addTo(call.traffic, delta);
    this.stats.framingBytesSent += framing;
  }

  /** `bytes` of payload and `messages` from world rank `peer` landed on this rank in `call`. */
  received(call: CallContext, peer: number, bytes: number, messages: number): void {
    const delta = { bytesSent: 0, bytesReceived: bytes, messagesSent: 0, messagesReceived: messages };
    this.add(call.op, peer, delta);
    addTo(call.traffic, delta);
  }

  /** A call of `op` finished on this rank. */
  callFinished(op: string): void {
    this.opEntry(op).calls += 1;
  }

  /**
   * Counts this rank's reads of peers' shared memory against `counts` from now
   * on. Reads of an earlier world (its row since the last reset) are folded
   * into this rank's totals first, so the counts outlive the world.
   */
  attachSharedReads(counts: SharedReadCounts): void {
    this.foldShared();
    this.shared = { counts, baseline: counts.rowOf(this.rank) };
  }

  /** A snapshot: later traffic does not change it. */
  snapshot(): WireStats {
    const out: WireStats = structuredClone(this.stats);
    if (this.shared) this.addSharedRow(out, this.shared.counts.rowOf(this.rank), this.shared.baseline);
    return out;
  }

  /** Zeroes this rank's counts (other ranks' are their own). */
  reset(): void {
    this.stats = emptyWireStats(this.rank);
    if (this.shared) this.shared.baseline = this.shared.counts.rowOf(this.rank);
  }

  private foldShared(): void {
    if (!this.shared) return;
    this.addSharedRow(this.stats, this.shared.counts.rowOf(this.rank), this.shared.baseline);
    this.shared = undefined;
  }

  /** Adds what peers read of this rank's memory since `baseline` to `into` as sent traffic. */
  private addSharedRow(into: WireStats, row: BigInt64Array, baseline: BigInt64Array): void {
    const counts = this.shared!.counts;
    for (let reader = 0; reader < counts.size; reader++) {
      for (let opcode = 0; opcode < OPCODES.length; opcode++) {
        const at = counts.entry(reader, opcode);
        const bytes = Number(row[at]! - baseline[at]!);
        const messages = Number(row[at + 1]! - baseline[at + 1]!);
        if (bytes === 0 && messages === 0) continue;
        const delta = { bytesSent: bytes, bytesReceived: 0, messagesSent: messages, messagesReceived: 0 };
        addTo(into, delta);
        addTo(opIn(into, OPCODES[opcode]!), delta);
        addTo(peerIn(into, reader), delta);
      }
    }
  }

  private add(op: string, peer: number, delta: TrafficCounts): void {
    addTo(this.stats, delta);
    addTo(this.opEntry(op), delta);
    addTo(peerIn(this.stats, peer), delta);
  }

  private opEntry(op: string): OpTraffic {
    return opIn(this.stats, op);
  }
}

function opIn(stats: WireStats, op: string): OpTraffic {
  return (stats.byOp[op] ??= { ...zeroTraffic(), calls: 0 });
}

function peerIn(stats: WireStats, peer: number): TrafficCounts {
  return (stats.byPeer[peer] ??= zeroTraffic());
}

/**
 * Bytes and messages each rank of a shm world read of each other rank's
 * shared memory, by opcode: BigInt64 entries [owner][reader][opcode][2]
 * (bytes, messages), then each owner's totals [owner][2], in a
 * SharedArrayBuffer every rank thread holds. Readers add (Atomics.add), any
 * rank may read.
 */
export class SharedReadCounts {
  private readonly words: BigInt64Array;

  constructor(
    buffer: SharedArrayBuffer,
    readonly size: number,
  ) {
    this.words = new BigInt64Array(buffer);
    if (this.words.length < SharedReadCounts.words(size)) {
      throw new RangeError(`SharedReadCounts: buffer holds ${this.words.length} entries, a world of ${size} ranks needs ${SharedReadCounts.words(size)}`);
    }
  }

  /** BigInt64 entries a world of `size` ranks needs. */
  static words(size: number): number {
    return size * size * OPCODES.length * 2 + size * 2;
  }

  static createBuffer(size: number): SharedArrayBuffer {
    return new SharedArrayBuffer(SharedReadCounts.words(size) * 8);
  }

  /** reader read `bytes` of owner's memory in `messages` pieces, for a call of `opcode`. */
  add(owner: number, reader: number, opcode: number, bytes: number, messages: number): void {
    const at = owner * this.size * OPCODES.length * 2 + this.entry(reader, opcode);
    // each BigInt is a heap object: made once, added twice (this runs on every direct read)
    const b = BigInt(bytes), m = BigInt(messages);
    Atomics.add(this.words, at, b);
    Atomics.add(this.words, at + 1, m);
    const total = this.totalAt(owner);
    Atomics.add(this.words, total, b);
    Atomics.add(this.words, total + 1, m);
  }

  private totalAt(owner: number): number {
    return this.size * this.size * OPCODES.length * 2 + owner * 2;
  }

  /** index of (reader, opcode)'s bytes within an owner's row; messages follow */
  entry(reader: number, opcode: number): number {
    return (reader * OPCODES.length + opcode) * 2;
  }

  /** A copy of owner's row: [reader][opcode][bytes, messages]. */
  rowOf(owner: number): BigInt64Array {
    const width = this.size * OPCODES.length * 2;
    const row = new BigInt64Array(width);
    for (let i = 0; i < width; i++) row[i] = Atomics.load(this.words, owner * width + i);
    return row;
  }

  /**
   * Everything read of owner's memory so far, over all readers and ops, written into `into` (no new
   * object: each direct call asks twice); returns it.
   */
  rowTotalInto(owner: number, into: { bytes: number; messages: number }): { bytes: number; messages: number } {
    const at = this.totalAt(owner);
    into.bytes = Number(Atomics.load(this.words, at));
    into.messages = Number(Atomics.load(this.words, at + 1));
    return into;
  }
}
