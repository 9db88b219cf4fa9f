/**
 * Turns a distributed cell's per-rank failures into the one Jupyter error the
 * user sees: evalue names the rank that failed first (`rank 2: TypeError:
 * ...`), the traceback shows that rank's stack in the cell's own lines, then
 * which other ranks failed or were cancelled, and whose state was lost.
 */
import { countRanks, describeRanks, GroupError, RankError } from "../../errors";
import type { ExecuteOutcome } from "../../protocol/backend";
import type { GroupCellResult } from "./rank-group";

export function groupErrorOutcome(result: GroupCellResult, host: string | ((rank: number) => string), bodyLineOffset: number, nameHost = false): ExecuteOutcome | undefined {
  const hostOf = typeof host === "string" ? () => host : host;
  const failed: RankError[] = [];
  const cancelled: number[] = [];
  result.outcomes.forEach((outcome, rank) => {
    if (outcome.ok) return;
    if (outcome.cancelled) cancelled.push(rank);
    else failed.push(new RankError(rank, hostOf(rank), outcome.error, nameHost));
  });
  const lost = result.lostState.length > 0 ? [`state lost on ${describeRanks(result.lostState)}: ended and restarted for the next cell, declarations gone`] : [];
  if (result.interrupted && result.firstFailure === undefined) {
    const running = `${cancelled.length} of ${countRanks(result.outcomes.length)} ${cancelled.length === 1 ? "was" : "were"} still running`;
    const evalue = `interrupted; ${running}` + (result.lostState.length > 0 ? `; state lost on ${describeRanks(result.lostState)}` : "");
    return { status: "error", ename: "InterruptedError", evalue, traceback: [`InterruptedError: ${evalue}`, ...lost] };
  }
  if (failed.length === 0) {
    if (cancelled.length === 0) return undefined;
    // Every failure was a cancellation (e.g. the world was cancelled from outside): report the first.
    const rank = cancelled[0]!;
    const outcome = result.outcomes[rank]!;
    if (outcome.ok) return undefined;
    failed.push(new RankError(rank, hostOf(rank), outcome.error, nameHost));
  }
  const first = failed.find((error) => error.rank === result.firstFailure) ?? failed[0]!;
  const group = new GroupError(failed, first);
  const stack = shiftCellLines(first.remote.stack, bodyLineOffset)
    .split("\n")
    .filter((line) => line.trim() !== "");
  // The stack's own first line repeats name and message; the header already says them.
  if (stack[0]?.startsWith(`${first.remote.name}:`)) stack.shift();
  const others = cancelled.length > 0 ? [`cancelled because rank ${first.rank} failed: ${describeRanks(cancelled)}`] : [];
  const evalue = group.message + (nameHost ? hostsOfNamedRanks(group.message, first.rank, result.outcomes.length, hostOf) : "");
  return {
    status: "error",
    ename: first.remote.name,
    evalue,
    traceback: [evalue, ...stack, ...others, ...lost],
  };
}

/**
 * On hosts, the other ranks a message names (`... but rank 2 called broadcast`) with where they
 * run: ` (rank 2 on node2:29470)`; "" when it names no other rank.
 */
function hostsOfNamedRanks(message: string, firstRank: number, size: number, hostOf: (rank: number) => string): string {
  const named = [...new Set([...message.matchAll(/\brank (\d+)\b/g)].map((match) => Number(match[1])))].filter((rank) => rank !== firstRank && rank < size);
  return named.length === 0 ? "" : ` (${named.map((rank) => `rank ${rank} on ${hostOf(rank)}`).join(", ")})`;
}

/**
 * Stack frames that point into the cell body (`<cell 5>:LINE:COL`) are moved
 * down by the lines above the body (the `%%distributed` line), so they match
 * what the user sees in the notebook.
 */
export function shiftCellLines(stack: string, bodyLineOffset: number): string {
  if (bodyLineOffset === 0) return stack;
  return stack.replace(/<(cell[^<>\n]*)>:(\d+)(:\d+)?/g, (_, label: string, line: string, column: string | undefined) => `<${label}>:${Number(line) + bodyLineOffset}${column ?? ""}`);
}
