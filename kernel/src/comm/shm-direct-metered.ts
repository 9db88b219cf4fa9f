// What peers read of a rank's memory during its direct (shared-memory)
// collectives, added to each call's span: the owner's side of shm-direct.ts's
// readFrom, read from the world's SharedReadCounts around the call.
import type { DirectCollectives } from "./shm-direct";
import type { ShmTransport } from "./shm-transport";
import type { CallContext } from "./transport";
import type { SharedReadCounts } from "./wire-counters";

/**
 * The direct collectives, each adding to its call's span what peers read of this rank's memory
 * while the call ran (the owner's side of readFrom; reads after it left count in dist.stats only).
 */
export function metered(c: DirectCollectives, t: ShmTransport, reads: SharedReadCounts | undefined): DirectCollectives {
  if (!reads) return c;
  // reused by every call: direct collectives run synchronously, one at a time
  const before = { bytes: 0, messages: 0 };
  const after = { bytes: 0, messages: 0 };
  const start = () => reads.rowTotalInto(t.rank, before);
  const finish = (call: CallContext) => {
    reads.rowTotalInto(t.rank, after);
    call.traffic.bytesSent += after.bytes - before.bytes;
    call.traffic.messagesSent += after.messages - before.messages;
  };
  // one wrapper per op, with its parameters spelled out: no rest array on every call
  return {
    allReduce(call, x, out, redop) {
      start();
      c.allReduce(call, x, out, redop);
      finish(call);
    },
    reduceScatter(call, x, out, redop) {
      start();
      c.reduceScatter(call, x, out, redop);
      finish(call);
    },
    allGather(call, x, out) {
      start();
      c.allGather(call, x, out);
      finish(call);
    },
    broadcast(call, x, out, root) {
      start();
      c.broadcast(call, x, out, root);
      finish(call);
    },
  };
}
