// What a rank's transport actually moved: payload bytes and messages, per
// operation and per peer. Transports count at the point where bytes leave or
// land (a socket write, a copy into or out of a shared ring, a read of a
// peer's shared slot), never from what an algorithm intended to send, so a
// wrong algorithm, a wasteful encoding or an extra message shows up here.
//
// `dist.stats()` returns a WireStats snapshot; `dist.stats.reset()` zeroes it.

/** Bytes and messages in each direction. Bytes are payload bytes (frame headers are counted apart). */
export interface TrafficCounts {
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
}

export interface OpTraffic extends TrafficCounts {
  /** calls of this op that finished on this rank */
  calls: number;
}

export interface WireStats extends TrafficCounts {
  /** world rank these counts belong to */
  rank: number;
  /** frame headers and other framing bytes sent (tcp: 48 bytes a frame; shm: ring headers) */
  framingBytesSent: number;
  /** by op name as the communicator calls it: "allReduce", "allGather", "send", "recv", ... */
  byOp: Record<string, OpTraffic>;
  /** by the peer's world rank */
  byPeer: Record<number, TrafficCounts>;
}

export function zeroTraffic(): TrafficCounts {
  return { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0 };
}

export function emptyWireStats(rank: number): WireStats {
  return { rank, ...zeroTraffic(), framingBytesSent: 0, byOp: {}, byPeer: {} };
}
