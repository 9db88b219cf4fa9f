// Who a timed-out collective is really waiting for. A rank's wait names the
// peers it expects bytes from, but in a ring those may be waiting
// themselves: with rank 1 stopped, rank 2 waits for rank 0, which waits for
// rank 1. When a collective times out, the transport learns where each
// member of the group is (tcp: it asks them; shm: it reads their entered
// descriptors) and names the members that have not entered the call.
import { callLabel, describeCall, type Descriptor } from "./descriptor";
import { describeRanks } from "./comm-errors";

/** What the timed-out rank learned of one peer (a world rank). */
export interface PeerWhereabouts {
  rank: number;
  /** false: the peer did not answer in time (tcp), so it is stopped or busy outside communication */
  answered: boolean;
  /** the peer's latest collective call; undefined: it has made none */
  desc?: Descriptor;
  /** tcp: the peer's call of the number asked about, when it has made it (it may have left it since) */
  asked?: Descriptor;
  /** world ranks the peer is waiting for now (empty: it is not waiting) */
  waitingFor: number[];
  /** the point-to-point call the peer is waiting in (`send #1 to rank 0`), if any: it may be why it has not arrived */
  pointToPoint?: string;
}

export interface Blame {
  /** world ranks that have not entered the call (or did not answer) */
  notArrived: number[];
  /** sentences for the error message */
  text: string;
  /** the text says more than which ranks did not arrive (a peer's point-to-point call), so it is worth printing even then */
  saysWhere?: boolean;
}

/** Has `theirs` reached the call `mine` (it is in it or past it)? */
function reached(mine: Descriptor, theirs: Descriptor | undefined): boolean {
  if (!theirs || theirs.group !== mine.group) return false;
  if (theirs.epoch !== mine.epoch) return theirs.epoch > mine.epoch;
  return theirs.call >= mine.call;
}

/** The blame for `mine` given each peer's whereabouts; `answerMs` is how long a peer had to answer. */
export function blameTimeout(mine: Descriptor, peers: readonly PeerWhereabouts[], answerMs?: number): Blame {
  const notArrived: number[] = [];
  const lines: string[] = [];
  for (const p of peers) {
    if (!p.answered) {
      notArrived.push(p.rank);
      const within = answerMs === undefined ? "" : ` within ${(answerMs / 1000).toFixed(1)} s`;
      lines.push(`rank ${p.rank} did not answer${within} (stopped, or busy in code outside communication)`);
    } else if (!reached(mine, p.desc)) {
      notArrived.push(p.rank);
      const inside = p.pointToPoint ? `it is in ${p.pointToPoint}; its latest collective` : "its latest call";
      lines.push(`rank ${p.rank} has not entered ${callLabel(mine)} (${inside}: ${p.desc ? describeCall(p.desc) : "none"})`);
    } else if (p.waitingFor.length > 0) {
      lines.push(`rank ${p.rank} is in ${callLabel(p.desc!)} waiting for ${describeRanks(p.waitingFor)}`);
    }
  }
  if (notArrived.length === 0) return { notArrived, text: "" };
  const saysWhere = peers.some((p) => notArrived.includes(p.rank) && p.pointToPoint !== undefined);
  return { notArrived, text: `${describeRanks(notArrived)} did not arrive: ${lines.join("; ")}`, saysWhere };
}
