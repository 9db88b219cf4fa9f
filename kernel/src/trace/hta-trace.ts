/**
 * One rank's trace in the shape Holistic Trace Analysis (HTA) reads from the
 * PyTorch profiler, and the figures HTA should find in it.
 *
 * HTA analyses device kernels only: events whose `args.stream` is a positive
 * number, each tied by `args.correlation` to a host event, grouped into steps
 * by host annotations named `ProfilerStep#N`, and sorted into kinds by name
 * (`^nccl.*Kernel` is communication, `^Memcpy|^Memset` memory, anything else
 * computation). A distlab rank has no device queue of its own on CPU, so the
 * rank's own work stands in for it:
 *
 * - host side (pid = rank, one tid per distlab stream): every span as recorded,
 *   with `args.correlation`; `dist.step` spans become `ProfilerStep#N`;
 * - device side (pid = DEVICE_PID_BASE + rank, tid = lane number): each instant
 *   that a compute or comm span owns (its innermost time, see self-time.ts)
 *   becomes one "kernel" on the lane of its distlab stream, with the host span's
 *   correlation. Comm kernels are named `ncclKernel-named: distlab <op> (not NCCL)`
 *   because HTA recognises communication by that name pattern only; the name and
 *   `args.distlab` say what they are. Waiting (`idle`), data and other spans are
 *   not kernels: HTA counts their time as idle, as it would count a GPU waiting
 *   on its host.
 *
 * HTA leaves out the last `ProfilerStep` (in a PyTorch trace it may be cut
 * short). distlab's steps are complete, so the trace ends with an empty step
 * marker after the last one, said in its args, and every real step is analysed.
 */
import { intersectionLength, totalLength, unionOf, type IntervalList } from "./intervals";
import type { TimelinePayload } from "./payload";
import { selfTimePieces, workByStream } from "./self-time";
import { STEP_STREAM, streamOf, type TimelineSpan } from "./span";

/** Device-side pids sit apart from the ranks' host pids (which are the ranks). */
export const DEVICE_PID_BASE = 1_000_000;

const FIRST_CORRELATION = 1 << 20;

export interface HtaTrace {
  /** First key: HTA finds the rank by the first `"rank": N` in the file's text. */
  distributedInfo: { backend: string; rank: number; world_size: number };
  schemaVersion: 1;
  traceEvents: Array<Record<string, unknown>>;
  displayTimeUnit: "ms";
  /** What HTA should report for this rank, from distlab's own span arithmetic. */
  distlab: HtaFigures;
}

/** Per-rank figures in HTA's terms, percent of the analysed window (0..100). */
export interface HtaFigures {
  rank: number;
  /** steps analysed (the `ProfilerStep` numbers) */
  steps: number[];
  /** microseconds from the first kernel's start to the last kernel's end */
  windowUs: number;
  computePct: number;
  /** comm time that no compute overlapped (HTA's "non compute") */
  nonComputePct: number;
  /** neither compute nor comm (HTA's "idle"): distlab's idle, data, other and untracked time */
  idlePct: number;
  /** percent of comm time that ran while compute did (HTA's comm/comp overlap) */
  overlapPct: number;
}

interface Kernel {
  piece: { start: number; end: number };
  span: TimelineSpan;
  lane: number;
}

const pct = (part: number, whole: number): number => (whole > 0 ? (100 * part) / whole : 0);

function isStepMarker(span: TimelineSpan): boolean {
  return streamOf(span) === STEP_STREAM && typeof span.args?.step === "number";
}

/** Lane numbers for a rank's streams: "main" is 1, the rest in order of first appearance (HTA wants > 0). */
function laneNumbers(spans: readonly TimelineSpan[]): Map<string, number> {
  const lanes = new Map<string, number>([["main", 1]]);
  for (const span of spans) {
    const stream = streamOf(span);
    if (stream !== STEP_STREAM && !lanes.has(stream)) lanes.set(stream, lanes.size + 1);
  }
  return lanes;
}

/** The rank's compute and comm pieces that start inside one of its steps, with their lanes. */
function kernelsOf(spans: readonly TimelineSpan[], steps: readonly TimelineSpan[], lanes: Map<string, number>): Kernel[] {
  const inStep = (ts: number): boolean => steps.some((s) => ts >= s.ts && ts < s.ts + s.dur);
  const kernels: Kernel[] = [];
  for (const [stream, list] of workByStream(spans)) {
    for (const piece of selfTimePieces(list)) {
      if (piece.span.cat !== "compute" && piece.span.cat !== "comm") continue;
      // HTA keeps a kernel when its host event starts in a step; with no steps, keep all.
      if (steps.length > 0 && !inStep(piece.span.ts)) continue;
      kernels.push({ piece, span: piece.span, lane: lanes.get(stream)! });
    }
  }
  return kernels.sort((a, b) => a.piece.start - b.piece.start);
}

/** What HTA's temporal breakdown and overlap analyses compute, over `kernels`. */
function figuresOf(rank: number, stepNumbers: number[], kernels: readonly Kernel[]): HtaFigures {
  const compute = unionOf(kernels.filter((k) => k.span.cat === "compute").map((k) => [k.piece.start, k.piece.end] as const));
  const comm = unionOf(kernels.filter((k) => k.span.cat === "comm").map((k) => [k.piece.start, k.piece.end] as const));
  const all: IntervalList = unionOf(kernels.map((k) => [k.piece.start, k.piece.end] as const));
  const windowUs = all.length > 0 ? all[all.length - 1] - all[0] : 0;
  const busy = totalLength(all);
  const overlap = intersectionLength(compute, comm);
  return {
    rank,
    steps: stepNumbers,
    windowUs,
    computePct: pct(totalLength(compute), windowUs),
    nonComputePct: pct(busy - totalLength(compute), windowUs),
    idlePct: pct(windowUs - busy, windowUs),
    overlapPct: pct(overlap, totalLength(comm)),
  };
}

/** The HTA trace of `rank`. */
export function toHtaTrace(payload: TimelinePayload, rank: number, backend = "distlab"): HtaTrace {
  const spans = payload.spans.filter((s) => s.rank === rank);
  const steps = spans.filter(isStepMarker).sort((a, b) => a.ts - b.ts);
  const lanes = laneNumbers(spans);
  const hostTids = new Map<string, number>([...lanes].map(([stream, lane]) => [stream, lane - 1]));
  hostTids.set(STEP_STREAM, hostTids.size);
  const info = payload.ranks.find((r) => r.rank === rank);
  const devicePid = DEVICE_PID_BASE + rank;
  const events: Array<Record<string, unknown>> = [
    { ph: "M", pid: rank, tid: 0, name: "process_name", args: { name: `rank ${rank} (${info?.host ?? "?"} ${info?.device ?? "?"})` } },
    { ph: "M", pid: devicePid, tid: 0, name: "process_name", args: { name: `rank ${rank} device lanes (distlab spans, not GPU kernels)` } },
  ];
  for (const [stream, tid] of hostTids) events.push({ ph: "M", pid: rank, tid, name: "thread_name", args: { name: stream } });
  for (const [stream, lane] of lanes) events.push({ ph: "M", pid: devicePid, tid: lane, name: "thread_name", args: { name: `lane ${lane}: ${stream}` } });

  const correlation = new Map<TimelineSpan, number>();
  for (const span of spans) {
    const stream = streamOf(span);
    if (isStepMarker(span)) {
      events.push({ ph: "X", pid: rank, tid: hostTids.get(STEP_STREAM), name: `ProfilerStep#${span.args!.step}`, cat: "user_annotation", ts: span.ts, dur: span.dur, args: { distlab: span.name } });
      continue;
    }
    // Ids from 2^20 up: HTA 0.5 stores correlations in the narrowest integer type that holds
    // them and then writes row indices into a column of that type, which fails for int8 ids.
    const id = FIRST_CORRELATION + correlation.size;
    correlation.set(span, id);
    // HTA reads `args.stream` as a device stream number: the distlab stream name moves to its own key.
    const { stream: _stream, ...rest } = span.args ?? {};
    events.push({ ph: "X", pid: rank, tid: hostTids.get(stream), name: span.name, cat: span.cat, ts: span.ts, dur: span.dur, args: { ...rest, distlab_stream: stream, correlation: id } });
  }
  if (steps.length > 0) {
    const last = steps[steps.length - 1];
    events.push({
      ph: "X", pid: rank, tid: hostTids.get(STEP_STREAM), name: `ProfilerStep#${(last.args!.step as number) + 1}`, cat: "user_annotation",
      ts: last.ts + last.dur, dur: 0,
      args: { distlab: "end marker: HTA leaves out a trace's last step, so this empty one follows the last real step" },
    });
  }
  const kernels = kernelsOf(spans, steps, lanes);
  for (const kernel of kernels) {
    const { span } = kernel;
    const name = span.cat === "comm" ? `ncclKernel-named: distlab ${String(span.args?.op ?? span.name)} (not NCCL)` : span.name;
    events.push({
      ph: "X", pid: devicePid, tid: kernel.lane, name, cat: "kernel", ts: kernel.piece.start, dur: kernel.piece.end - kernel.piece.start,
      args: { stream: kernel.lane, correlation: correlation.get(span), device: rank, distlab: `${span.cat} span "${span.name}" on rank ${rank}'s ${streamOf(span)} stream` },
    });
  }
  return {
    distributedInfo: { backend, rank, world_size: payload.ranks.length },
    schemaVersion: 1,
    traceEvents: events,
    displayTimeUnit: "ms",
    distlab: figuresOf(rank, steps.map((s) => s.args!.step as number), kernels),
  };
}
