/**
 * Every error the magics and the cluster raise, in one place.
 *
 * Option errors are synchronous and name the flag at fault (`UsageError`, or
 * the built-in `RangeError`/`TypeError` for programmatic options). Errors
 * that happen on a rank travel back as plain data (`RemoteErrorData`) and
 * become a `RankError`; several failing ranks become one `GroupError`.
 */

/** A magic line the user typed wrong: an unknown flag, a missing or bad value. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    message: string,
    /** The flag or word at fault, e.g. `-n` or `%dist frobnicate`. */
    readonly culprit?: string,
  ) {
    super(message);
  }
}

/** A backend or feature the flag spec accepts but this build cannot run yet. */
export class NotAvailableError extends Error {
  override readonly name = "NotAvailableError";
}

/** An error as it crosses from a rank to the kernel (structured-clone safe). */
export interface RemoteErrorData {
  name: string;
  message: string;
  /** Stack with frames already mapped to the cell's own line numbers where possible. */
  stack: string;
}

/** One rank failed. `rank` is the global rank; `host` is where it ran. */
export class RankError extends Error {
  override readonly name = "RankError";
  constructor(
    readonly rank: number,
    readonly host: string,
    readonly remote: RemoteErrorData,
  ) {
    super(`rank ${rank}: ${remote.name}: ${remote.message}`);
  }
}

/**
 * A distributed cell failed. `first` is the rank whose error caused the
 * others to be cancelled (the root cause); `errors` holds every failing rank,
 * ordered by rank.
 */
export class GroupError extends Error {
  override readonly name = "GroupError";
  readonly first: RankError;
  constructor(
    readonly errors: readonly RankError[],
    first?: RankError,
  ) {
    const root = first ?? errors[0];
    if (root === undefined) throw new TypeError("GroupError needs at least one RankError");
    const others = errors.filter((error) => error !== root).map((error) => error.rank);
    const suffix = others.length > 0 ? ` (ranks ${others.join(", ")} also failed)` : "";
    super(`${root.message}${suffix}`);
    this.first = root;
  }
}

/** Turns anything thrown into the wire form of an error. */
export function toRemoteErrorData(thrown: unknown): RemoteErrorData {
  if (thrown instanceof Error) {
    return { name: thrown.name, message: thrown.message, stack: thrown.stack ?? `${thrown.name}: ${thrown.message}` };
  }
  const text = typeof thrown === "string" ? thrown : safeString(thrown);
  return { name: "Error", message: `non-Error value thrown: ${text}`, stack: `Error: non-Error value thrown: ${text}` };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
