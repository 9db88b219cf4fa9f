/**
 * A rank's comm spans in columns: numbers in one Float64Array, names in a
 * string table, peer lists in a table, instead of one object with ten args
 * per collective.
 *
 * Why: a loop of small collectives records a span every few microseconds,
 * and as objects each cost the rank its allocation and structured clone and
 * the kernel the rebuild (a batch of 4096: 4.5-6.6 ms to post, 11.8-14.9 ms
 * to take in, on the cores the ranks run on; docs/timeline.md). Columns
 * cross as one typed array and a few strings, and the kernel builds each
 * span's objects once, straight into its timeline.
 *
 * A span's args are what cluster/rank-side/comm-spans.ts describes: op,
 * bytes, algorithm, the wire counts, group, seq and (when known) peers.
 */
import type { SpanArgs } from "./span";

/** What a batch carries: `count` spans of FIELDS numbers each. */
export interface PackedCommSpans {
  count: number;
  values: Float64Array;
  /** op, algorithm and group names, indexed by the values */
  strings: string[];
  /** peer lists (world ranks), indexed by the values */
  peerLists: number[][];
}

/** One span's fields, in this order, in `values`. */
const START = 0, DUR = 1, OP = 2, ALGORITHM = 3, GROUP = 4, SEQ = 5, BYTES = 6, SENT = 7, RECEIVED = 8, MESSAGES_SENT = 9, MESSAGES_RECEIVED = 10, PEERS = 11;
const FIELDS = 12;
/** PEERS of a span whose members are unknown */
const NO_PEERS = -1;

/** What the columns take from the communicator's report of a call (comm/types.ts CommSpan has these and more). */
export interface CommSpanFields {
  op: string;
  algorithm: string;
  /** microseconds, the rank's epoch clock */
  start: number;
  end: number;
  bytes: number;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
}

export class CommSpanColumns {
  private values = new Float64Array(FIELDS * 256);
  private count = 0;
  private strings: string[] = [];
  private readonly stringIndex = new Map<string, number>();
  private peerLists: number[][] = [];
  /** by identity: callers pass the same array for the same group */
  private readonly peerIndex = new Map<readonly number[], number>();

  get length(): number {
    return this.count;
  }

  push(span: CommSpanFields, group: string, seq: number, peers: readonly number[] | undefined): void {
    if ((this.count + 1) * FIELDS > this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    const at = this.count * FIELDS;
    const v = this.values;
    v[at + START] = span.start;
    v[at + DUR] = span.end - span.start;
    v[at + OP] = this.intern(span.op);
    v[at + ALGORITHM] = this.intern(span.algorithm);
    v[at + GROUP] = this.intern(group);
    v[at + SEQ] = seq;
    v[at + BYTES] = span.bytes;
    v[at + SENT] = span.bytesSent;
    v[at + RECEIVED] = span.bytesReceived;
    v[at + MESSAGES_SENT] = span.messagesSent;
    v[at + MESSAGES_RECEIVED] = span.messagesReceived;
    v[at + PEERS] = peers === undefined ? NO_PEERS : this.internPeers(peers);
    this.count++;
  }

  /** What was pushed since the last take, as a batch carries it (undefined when nothing was); starts afresh. */
  take(): PackedCommSpans | undefined {
    if (this.count === 0) return undefined;
    const packed = { count: this.count, values: this.values.slice(0, this.count * FIELDS), strings: this.strings, peerLists: this.peerLists };
    this.count = 0;
    this.strings = [];
    this.stringIndex.clear();
    this.peerLists = [];
    this.peerIndex.clear();
    return packed;
  }

  private intern(text: string): number {
    let index = this.stringIndex.get(text);
    if (index === undefined) {
      index = this.strings.push(text) - 1;
      this.stringIndex.set(text, index);
    }
    return index;
  }

  private internPeers(peers: readonly number[]): number {
    let index = this.peerIndex.get(peers);
    if (index === undefined) {
      index = this.peerLists.push([...peers]) - 1;
      this.peerIndex.set(peers, index);
    }
    return index;
  }
}

/**
 * Calls `visit` for each span of a batch's columns, with its own args object
 * (and its own copy of the peers). Returns false, visiting nothing, when
 * `packed` is not well formed: a batch comes from a rank, which runs user code.
 */
export function forEachCommSpan(packed: unknown, visit: (name: string, start: number, dur: number, args: SpanArgs) => void): boolean {
  if (!isPacked(packed)) return false;
  const { count, values: v, strings, peerLists } = packed;
  for (let at = 0; at < count * FIELDS; at += FIELDS) {
    const op = strings[v[at + OP]];
    const args: SpanArgs = {
      op, bytes: v[at + BYTES], algorithm: strings[v[at + ALGORITHM]],
      bytesSent: v[at + SENT], bytesReceived: v[at + RECEIVED], messagesSent: v[at + MESSAGES_SENT], messagesReceived: v[at + MESSAGES_RECEIVED],
      group: strings[v[at + GROUP]], seq: v[at + SEQ],
    };
    const peers = v[at + PEERS];
    if (peers !== NO_PEERS) args.peers = [...peerLists[peers]];
    visit(op, v[at + START], v[at + DUR], args);
  }
  return true;
}

function isPacked(packed: unknown): packed is PackedCommSpans {
  const p = packed as Partial<PackedCommSpans> | null;
  if (p === null || typeof p !== "object" || !(p.values instanceof Float64Array) || !Array.isArray(p.strings) || !Array.isArray(p.peerLists)) return false;
  const { count, values, strings, peerLists } = p as PackedCommSpans;
  if (!Number.isInteger(count) || count < 0 || count * FIELDS > values.length) return false;
  if (!strings.every((s) => typeof s === "string")) return false;
  if (!peerLists.every((list) => Array.isArray(list) && list.every(Number.isInteger))) return false;
  for (let at = 0; at < count * FIELDS; at += FIELDS) {
    for (const field of [OP, ALGORITHM, GROUP]) if (!(Number.isInteger(values[at + field]) && values[at + field] >= 0 && values[at + field] < strings.length)) return false;
    const peers = values[at + PEERS];
    if (peers !== NO_PEERS && !(Number.isInteger(peers) && peers >= 0 && peers < peerLists.length)) return false;
  }
  return true;
}
