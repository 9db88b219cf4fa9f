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
  ) {
    super(
      `rank ${rank} waited ${(waitedMs / 1000).toFixed(1)} s in ${call} for ${describeRanks(waitedFor)}`,
    );
  }
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

