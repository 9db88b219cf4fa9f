// Errors of the communication layer. Each names the rank that raised it and
// the call it was in, so a user can tell which line of which rank is at fault.
// Rank lists use the kernel's one wording (`rank 2`, `ranks 1 and 3`; a peer waited on twice is named once).
import { describeRanks } from "../errors";

/** A wait ran past the communicator's timeout. */
export class CommTimeoutError extends Error {
  override name = "CommTimeoutError";
  constructor(
    readonly rank: number,
    readonly call: string,
    readonly waitedFor: readonly number[],
    readonly waitedMs: number,
    /** what the rank learned of where the group's members are: the ranks that have not entered the call */
    blame?: { notArrived: number[]; text: string; saysWhere?: boolean },
  ) {
    super(
      `rank ${rank} waited ${(waitedMs / 1000).toFixed(1)} s in ${call} for ${describeRanks(waitedFor)}` +
        // said unless it only repeats whom the rank waited for (in a ring, the rank waited for may be
        // waiting itself) without saying where they are
        (blame?.text && (!sameRanks(blame.notArrived, waitedFor) || blame.saysWhere) ? `. ${blame.text}` : ""),
    );
    this.notArrived = blame?.notArrived ?? [];
  }
  /** world ranks found not to have entered the call when the wait timed out (empty: not known) */
  readonly notArrived: readonly number[];
}

/** The world was cancelled (by the kernel) or aborted (by a rank that found a fault). */
export class CommCancelledError extends Error {
  override name = "CommCancelledError";
  constructor(
    readonly rank: number,
    readonly call: string,
    readonly reason: string,
  ) {
    super(`rank ${rank} in ${call}: cancelled: ${reason}`);
  }
}

/** Two ranks entered different collectives (or the same one with different arguments). */
export class CommMismatchError extends Error {
  override name = "CommMismatchError";
  constructor(message: string) {
    super(message);
  }
}

/** A peer's process died or its connection was cut. */
export class PeerLostError extends Error {
  override name = "PeerLostError";
  constructor(
    readonly rank: number,
    readonly peer: number,
    detail: string,
  ) {
    super(`rank ${rank} lost rank ${peer}: ${detail}`);
  }
}

function sameRanks(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((r) => b.includes(r));
}

export { describeRanks };

/**
 * Communication of a cell that has ended: a call its code made afterwards (from a timer or a
 * promise the cell left running), or a receive or send still waiting when a later cell began.
 */
export class CommCellEndedError extends Error {
  override name = "CommCellEndedError";
  constructor(
    readonly rank: number,
    readonly call: string,
    readonly cell: number,
    detail: string,
  ) {
    super(`rank ${rank}: ${call} of cell ${cell}: ${detail}`);
  }
}
