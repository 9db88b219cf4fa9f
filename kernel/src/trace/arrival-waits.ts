/**
 * `idle` spans: time a rank was blocked in a call waiting for its peers.
 *
 * A collective cannot finish on any member before the last member has
 * entered it, so each member's wait is measured from two timestamps on the
 * one clock every rank shares: its own arrival (the start of its comm span)
 * and the last member's arrival, cut at the end of its own span (a send that
 * returns before its receiver arrives did not wait). The idle span lies
 * inside the comm span on the same stream, so the innermost-span rule counts
 * that time as idle, not comm. Calls are linked by `args.group` and
 * `args.seq`; a send and its receive share a pair group (cluster/rank-side/comm-spans.ts).
 */
import type { TimelineSpan } from "./span";

interface OpenCall {
  /** members of the call: the arriving span's peers plus itself; undefined when it carries no peers */
  expected: number | undefined;
  arrivals: TimelineSpan[];
}

export class ArrivalWaits {
  private readonly open = new Map<string, OpenCall>();

  /** Takes a span; returns the idle spans of its call once every member's comm span is in. */
  add(span: TimelineSpan): TimelineSpan[] {
    const args = span.args;
    if (span.cat !== "comm" || typeof args?.seq !== "number" || typeof args.group !== "string") return [];
    const key = `${args.group}#${args.seq}`;
    let call = this.open.get(key);
    if (call === undefined) {
      call = { expected: Array.isArray(args.peers) ? args.peers.length + 1 : undefined, arrivals: [] };
      this.open.set(key, call);
    }
    call.arrivals.push(span);
    if (call.expected === undefined || call.arrivals.length < call.expected) return [];
    this.open.delete(key);
    return waitsOf(call.arrivals);
  }

  /** The idle spans of calls still open (members unknown, or a member that never reported): from those that arrived. */
  drain(): TimelineSpan[] {
    const out: TimelineSpan[] = [];
    for (const call of this.open.values()) if (call.arrivals.length > 1) out.push(...waitsOf(call.arrivals));
    this.open.clear();
    return out;
  }
}

function waitsOf(arrivals: readonly TimelineSpan[]): TimelineSpan[] {
  let last = arrivals[0]!;
  for (const span of arrivals) if (span.ts > last.ts) last = span;
  const out: TimelineSpan[] = [];
  for (const span of arrivals) {
    const dur = Math.min(last.ts, span.ts + span.dur) - span.ts;
    if (span === last || !(dur > 0)) continue;
    const { op, group, seq, stream } = span.args!;
    out.push({
      rank: span.rank, name: "wait", cat: "idle", ts: span.ts, dur,
      args: { op, group, seq, waitedFor: last.rank, ...(stream === undefined ? {} : { stream }) },
    });
  }
  return out;
}
