/**
 * The pipeline bubble read back from timeline spans: over the window from
 * the first to the last pass (spans carrying `args.stage`, which
 * PipelineParallel records around each pass's compute), each stage's time
 * not covered by its own passes. Give it the spans of `%dist timeline --into
 * NAME` (NAME.spans), filtered to one run.
 *
 *   idleFraction     mean over stages of idle / window: GPipe's (p-1)/(m+p-1)
 *                    (the timeline summary's bubbleFraction, for one run)
 *   bubbleOverIdeal  total idle / total busy: the bubble as a fraction of the
 *                    ideal time, Megatron's (p-1)/m for 1F1B, (p-1)/(v m) interleaved
 */
import { totalLength, unionOf } from "../trace/intervals";

/** The fields of a timeline span this reads (microseconds). */
export interface StageSpan {
  ts: number;
  dur: number;
  args?: { stage?: unknown; [key: string]: unknown };
}

export interface MeasuredBubble {
  idleFraction: number;
  bubbleOverIdeal: number;
  /** first pass's start to last pass's end, microseconds */
  windowUs: number;
  stages: { stage: number; busyUs: number; idleUs: number }[];
}

export function measurePipelineBubble(spans: readonly StageSpan[]): MeasuredBubble {
  const byStage = new Map<number, [number, number][]>();
  let first = Infinity;
  let last = -Infinity;
  for (const span of spans) {
    const stage = span.args?.stage;
    if (typeof stage !== "number") continue;
    let list = byStage.get(stage);
    if (!list) byStage.set(stage, (list = []));
    list.push([span.ts, span.ts + span.dur]);
    first = Math.min(first, span.ts);
    last = Math.max(last, span.ts + span.dur);
  }
  if (byStage.size === 0) throw new RangeError("measurePipelineBubble: no span carries args.stage (is this a pipeline run's timeline?)");
  const windowUs = last - first;
  const stages = [...byStage.entries()]
    .sort(([a], [b]) => a - b)
    .map(([stage, list]) => {
      const busyUs = totalLength(unionOf(list));
      return { stage, busyUs, idleUs: windowUs - busyUs };
    });
  const idle = stages.reduce((t, s) => t + s.idleUs, 0);
  const busy = stages.reduce((t, s) => t + s.busyUs, 0);
  return {
    idleFraction: stages.reduce((t, s) => t + s.idleUs / windowUs, 0) / stages.length,
    bubbleOverIdeal: idle / busy,
    windowUs,
    stages,
  };
}
