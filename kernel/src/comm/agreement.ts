// Which payload-free agreement frames a one-way collective needs on top of
// its own data, so that ranks that disagree find out inside the call.
//
// Each member of a group checks the descriptor of one ring neighbour: the
// member before it (the member after it for a reduce, whose data flows
// toward lower ranks). If every member finds its neighbour's call equal to
// its own, all members agree (walk round the ring); if not, some member finds
// the difference and stops the world. The neighbour is fixed by group order,
// not by the call's root, so members that disagree on the root still check
// the same ring. The check rides on a data frame wherever the collective
// already sends one along that ring edge (every frame carries its sender's
// descriptor, checked on arrival); only the edges that carry no data get an
// agreement frame, sent when the call begins and awaited in its first
// exchange. Both ends of an edge work out from their own descriptor whether
// it carries data, so members that agree always agree on that too; members
// that do not are caught by whichever frame arrives first on the edge.
//
// Frames per call on n ranks (data + agreement): a tree broadcast n-1 + about
// n/2 (a separate ring would add n), a scatter-allgather broadcast its data
// only, a tree reduce n-1 + about n/2, gather and scatter n-1 + n-1.
import { ALGORITHMS, OPCODES, type Descriptor } from "./descriptor";

/** The agreement frames of one member in one call (world ranks). */
export interface AgreementFrames {
  /** send this rank's descriptor to this member when the call begins */
  sendTo?: number;
  /** wait in the call's first exchange for this member's descriptor frame */
  recvFrom?: number;
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/** Which of this member's ring edges its own data frames cover, and which way round the ring it checks. */
interface Coverage {
  /** the ring runs toward lower ranks: this member checks the member after it (reduce) */
  backward: boolean;
  /** this member receives data from the neighbour it checks */
  fromNeighbour: boolean;
  /** this member sends data to the neighbour that checks it */
  toNeighbour: boolean;
}

/**
 * `v` is this member's group rank relative to the root, `n` the group size. Mirrors the algorithms in
 * algorithms.ts and communicator.ts: a change there must change this too (comm-agreement.test.ts checks
 * both ends of every edge agree, and the mismatch tests that a disagreement is found).
 */
function coverage(op: string, algorithm: string, v: number, n: number): Coverage {
  switch (op) {
    case "broadcast":
      // scatter, then a ring all-gather: every member receives from the one before and sends to the one after
      if (algorithm === "ring") return { backward: false, fromNeighbour: true, toNeighbour: true };
      // binomial tree: an odd v receives from v - 1; an even v sends to v + 1 (if there is one)
      return { backward: false, fromNeighbour: v % 2 === 1, toNeighbour: v % 2 === 0 && v + 1 < n };
    case "reduce":
      // binomial tree toward the root: an odd v sends to v - 1; an even v receives from v + 1 (if there is one)
      return { backward: true, fromNeighbour: v % 2 === 0 && v + 1 < n, toNeighbour: v % 2 === 1 };
    case "gather":
      // the root receives from every member (the one before it included); the member before the root sends to it
      return { backward: false, fromNeighbour: v === 0, toNeighbour: v === n - 1 };
    case "scatter":
      // the root sends to every member (the one after it included)
      return { backward: false, fromNeighbour: v === 1, toNeighbour: v === 0 };
    default:
      return { backward: false, fromNeighbour: false, toNeighbour: false };
  }
}

const ONE_WAY_OPS = new Set(["broadcast", "reduce", "gather", "scatter"]);

/**
 * The agreement frames of world rank `me` in the call `d` of the group whose world ranks are `members`
 * (in group-rank order); undefined when the call needs none: not a one-way op, a direct (shared-memory)
 * collective, a group of one, or every ring edge of this member covered by data.
 */
export function agreementFrames(d: Descriptor, members: readonly number[], me: number): AgreementFrames | undefined {
  const op = OPCODES[d.opcode];
  const algorithm = ALGORITHMS[d.algorithm];
  if (!ONE_WAY_OPS.has(op) || algorithm === "direct") return undefined;
  const n = members.length;
  const at = members.indexOf(me);
  if (n < 2 || at < 0) return undefined;
  const { backward, fromNeighbour, toNeighbour } = coverage(op, algorithm, mod(at - d.root, n), n);
  const before = members[mod(at - 1, n)]!;
  const after = members[mod(at + 1, n)]!;
  const checked = backward ? after : before;
  const checking = backward ? before : after;
  const frames: AgreementFrames = {
    ...(fromNeighbour ? {} : { recvFrom: checked }),
    ...(toNeighbour ? {} : { sendTo: checking }),
  };
  return frames.recvFrom === undefined && frames.sendTo === undefined ? undefined : frames;
}
