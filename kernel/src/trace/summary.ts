/**
 * The numbers printed beside the timeline: where each rank's time went, how
 * much communication hid behind compute, the pipeline bubble and the
 * straggler.
 */
import { intersectionLength, totalLength, unionOf } from "./intervals";
import { rankCategoryTime } from "./self-time";
import type { TimelineSpan } from "./span";

export interface RankSummary {
  rank: number;
  /** Percent of the timeline's duration (0..100); categories may overlap across streams. */
  computePct: number;
  commPct: number;
  dataPct: number;
  idlePct: number;
  otherPct: number;
  /** Percent of this rank's comm time that ran while it also computed. */
  overlapPct: number;
  /** microseconds this rank's peers spent waiting for it in collectives */
  waitedForUs: number;
}

export interface TimelineSummary {
  /** microseconds from the cell's start to the end of the last span */
  durationUs: number;
  spanCount: number;
  ranks: RankSummary[];
  /** Percent of all comm time that overlapped compute on the same rank. */
  overlapPct: number;
  /** Idle fraction of the pipeline (0..1), when spans carry `args.stage`; else null. */
  bubbleFraction: number | null;
  /** The rank the others waited for most in collectives; null with no linked collectives. */
  stragglerRank: number | null;
  /** Collectives seen on more than one rank. */
  collectives: number;
}

const pct = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

function spansByRank(spans: readonly TimelineSpan[], rankCount: number): TimelineSpan[][] {
  const out: TimelineSpan[][] = Array.from({ length: rankCount }, () => []);
  for (const span of spans) {
    while (span.rank >= out.length) out.push([]);
    out[span.rank].push(span);
  }
  return out;
}

/**
 * Pipeline bubble: over the window from the first to the last stage-marked
 * span, the fraction of each stage's time not covered by its stage-marked
 * work, averaged over stages. A GPipe schedule with p stages, m micro-batches
 * and equal forward/backward times gives (p-1)/(m+p-1).
 */
export function pipelineBubbleFraction(spans: readonly TimelineSpan[]): number | null {
  const byStage = new Map<number, TimelineSpan[]>();
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const span of spans) {
    const stage = span.args?.stage;
    if (typeof stage !== "number") continue;
    let list = byStage.get(stage);
    if (list === undefined) byStage.set(stage, (list = []));
    list.push(span);
    first = Math.min(first, span.ts);
    last = Math.max(last, span.ts + span.dur);
  }
  if (byStage.size === 0 || !(last > first)) return null;
  const window = last - first;
  let idleSum = 0;
  for (const list of byStage.values()) {
    const busy = totalLength(unionOf(list.map((s) => [s.ts, s.ts + s.dur] as const)));
    idleSum += 1 - Math.min(busy, window) / window;
  }
  return idleSum / byStage.size;
}

/**
 * Links each collective across ranks (by `args.group` and `args.seq`, else by its name and
 * how many same-named comm spans came before it on that rank) and charges the
 * wait of the early arrivals to the last rank to arrive.
 * Returns microseconds waited for, indexed by rank, and the collective count.
 */
export function collectiveWaits(spans: readonly TimelineSpan[], rankCount: number): { waitedForUs: number[]; collectives: number } {
  const groups = new Map<string, TimelineSpan[]>();
  const occurrences = new Map<string, number>();
  const sorted = spans.filter((s) => s.cat === "comm").sort((a, b) => a.ts - b.ts);
  for (const span of sorted) {
    let key: string;
    if (typeof span.args?.seq === "number") {
      key = `seq:${String(span.args.group ?? "")}:${span.args.seq}`;
    } else {
      const counterKey = `${span.rank}|${span.name}`;
      const k = occurrences.get(counterKey) ?? 0;
      occurrences.set(counterKey, k + 1);
      key = `name:${span.name}#${k}`;
    }
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = []));
    group.push(span);
  }
  const waitedForUs = new Array<number>(rankCount).fill(0);
  let collectives = 0;
  for (const group of groups.values()) {
    if (new Set(group.map((s) => s.rank)).size < 2) continue;
    collectives++;
    let lastIndex = 0;
    for (let i = 1; i < group.length; i++) if (group[i].ts > group[lastIndex].ts) lastIndex = i;
    const last = group[lastIndex];
    let wait = 0;
    for (const span of group) wait += last.ts - span.ts;
    while (last.rank >= waitedForUs.length) waitedForUs.push(0);
    waitedForUs[last.rank] += wait;
  }
  return { waitedForUs, collectives };
}

/** The whole summary of a timeline with `rankCount` ranks. */
export function summarizeTimeline(spans: readonly TimelineSpan[], rankCount: number): TimelineSummary {
  let durationUs = 0;
  for (const span of spans) durationUs = Math.max(durationUs, span.ts + span.dur);
  const { waitedForUs, collectives } = collectiveWaits(spans, rankCount);
  let commTotal = 0;
  let overlapTotal = 0;
  const ranks = spansByRank(spans, rankCount).map((rankSpans, rank): RankSummary => {
    const time = rankCategoryTime(rankSpans);
    const comm = totalLength(time.comm);
    const overlap = intersectionLength(time.comm, time.compute);
    commTotal += comm;
    overlapTotal += overlap;
    return {
      rank,
      computePct: pct(totalLength(time.compute), durationUs),
      commPct: pct(comm, durationUs),
      dataPct: pct(totalLength(time.data), durationUs),
      idlePct: pct(totalLength(time.idle), durationUs),
      otherPct: pct(totalLength(time.other), durationUs),
      overlapPct: pct(overlap, comm),
      waitedForUs: waitedForUs[rank] ?? 0,
    };
  });
  let stragglerRank: number | null = null;
  for (let r = 0; r < waitedForUs.length; r++) {
    if (waitedForUs[r] > 0 && (stragglerRank === null || waitedForUs[r] > waitedForUs[stragglerRank])) stragglerRank = r;
  }
  return {
    durationUs,
    spanCount: spans.length,
    ranks,
    overlapPct: pct(overlapTotal, commTotal),
    bubbleFraction: pipelineBubbleFraction(spans),
    stragglerRank,
    collectives,
  };
}
