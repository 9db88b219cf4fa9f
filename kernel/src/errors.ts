/**
 * Every error the magics and the cluster raise, in one place.
 *
 * Option errors are synchronous and name the flag at fault (`UsageError`, or
 * the built-in `RangeError`/`TypeError` for programmatic options). Errors
 * that happen on a rank travel back as plain data (`RemoteErrorData`) and
 * become a `RankError`; several failing ranks become one `GroupError`.
 */
import { inspect } from "node:util";

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
    /** Say the host in the message (ranks on several hosts). */
    nameHost = false,
  ) {
    super(`rank ${rank}${nameHost ? ` on ${host}` : ""}: ${remote.name}: ${remote.message}`);
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
    const others = errors.filter((error) => error !== root && error.rank !== root.rank).map((error) => error.rank);
    const suffix = others.length > 0 ? ` (${describeRanks(others)} also failed)` : "";
    super(`${root.message}${suffix}`);
    this.first = root;
  }
}

/** How much of a thrown value's message and stack crosses from a rank (characters each); the rest is cut with a note. */
export const REMOTE_ERROR_TEXT_CHARS = 10_000;

/**
 * Turns anything thrown into the wire form of an error, and never throws
 * itself: a value whose getters or Proxy traps throw, a cycle, a Symbol,
 * null or undefined all become readable text, and a huge message is cut to
 * `REMOTE_ERROR_TEXT_CHARS`.
 */
export function toRemoteErrorData(thrown: unknown): RemoteErrorData {
  const isError = guarded(() => thrown instanceof Error, false);
  if (isError) {
    const error = thrown as Error;
    const name = guarded(() => String(error.name), "Error");
    const message = guarded(() => String(error.message), "<its message could not be read: the message getter threw>");
    const stack = guarded(() => (typeof error.stack === "string" ? error.stack : undefined), undefined);
    return {
      name: cut(name, 200),
      message: cut(message, REMOTE_ERROR_TEXT_CHARS),
      stack: cut(stack ?? `${name}: ${message}`, REMOTE_ERROR_TEXT_CHARS),
    };
  }
  const text = cut(describeThrown(thrown), REMOTE_ERROR_TEXT_CHARS);
  return { name: "Error", message: `non-Error value thrown: ${text}`, stack: `Error: non-Error value thrown: ${text}` };
}

/** `rank 2`, `ranks 1 and 3`, `ranks 0, 1 and 3`: sorted, each rank once; `nobody` for none. */
export function describeRanks(ranks: Iterable<number>): string {
  const sorted = [...new Set(ranks)].sort((a, b) => a - b);
  if (sorted.length === 0) return "nobody";
  if (sorted.length === 1) return `rank ${sorted[0]}`;
  const last = sorted.pop();
  return `ranks ${sorted.join(", ")} and ${last}`;
}

/** `1 rank`, `3 ranks`. */
export function countRanks(count: number): string {
  return `${count} ${count === 1 ? "rank" : "ranks"}`;
}

/** What a non-Error thrown value looks like: util.inspect's form, or a fallback when even that throws. */
function describeThrown(value: unknown): string {
  if (typeof value === "string") return value;
  return guarded(
    () => inspect(value, { depth: 2, breakLength: Infinity, maxStringLength: REMOTE_ERROR_TEXT_CHARS, maxArrayLength: 20 }),
    `<a ${typeof value} that could not be shown: inspecting it threw>`,
  );
}

function guarded<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}

function cut(text: string, limit: number): string {
  if (text.length <= limit) return text;
  return `${text.slice(0, limit)}... (${text.length - limit} more characters cut)`;
}
