// Adding up WireStats of one rank counted in two places: the rank thread's
// transport and its communication thread's (comm-thread.ts), which moves the
// rank's gradient buckets on a world of its own. dist.stats() shows the sum.
import { zeroTraffic, type OpTraffic, type TrafficCounts, type WireStats } from "./wire-stats";

function addTraffic<T extends TrafficCounts>(into: T, more: TrafficCounts): T {
  into.bytesSent += more.bytesSent;
  into.bytesReceived += more.bytesReceived;
  into.messagesSent += more.messagesSent;
  into.messagesReceived += more.messagesReceived;
  return into;
}

/** a + b, per op and per peer; both must be the same rank's. Neither input is changed. */
export function addWireStats(a: WireStats, b: WireStats): WireStats {
  if (a.rank !== b.rank) throw new RangeError(`addWireStats: counts of rank ${a.rank} and rank ${b.rank} do not add up to one rank's`);
  const out: WireStats = addTraffic({ rank: a.rank, ...zeroTraffic(), framingBytesSent: a.framingBytesSent + b.framingBytesSent, byOp: {}, byPeer: {} }, a);
  addTraffic(out, b);
  for (const source of [a, b]) {
    for (const [op, traffic] of Object.entries(source.byOp)) {
      const into: OpTraffic = (out.byOp[op] ??= { ...zeroTraffic(), calls: 0 });
      addTraffic(into, traffic);
      into.calls += traffic.calls;
    }
    for (const [peer, traffic] of Object.entries(source.byPeer)) addTraffic((out.byPeer[Number(peer)] ??= zeroTraffic()), traffic);
  }
  return out;
}
