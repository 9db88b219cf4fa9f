/**
 * Writes the notebook the browser test opens: outputs made by the real
 * recorder and TimelineSession (4 ranks training 3 steps: forward, an
 * allreduce linked across ranks by seq, optimizer; rank 3 is slow), plus an
 * output with a wrong-version payload that must render as a message.
 */
import { writeFileSync } from "node:fs";
import type { DisplayPayload, ExecutionIO } from "../../kernel/src/protocol/backend";
import { TimelineAggregator, TimelineSession, createRankRecorder, epochMicros, timelineBundle, TIMELINE_MIME_TYPE } from "../../kernel/src/trace";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function recordFourRanks(): Promise<DisplayPayload> {
  const displays: DisplayPayload[] = [];
  const io: ExecutionIO = {
    executionCount: 1, interruptSignal: new AbortController().signal, stream: () => {}, clearOutput: () => {},
    display: (payload) => displays.push(payload), input: () => Promise.reject(new Error("no stdin")),
    comms: { registerTarget: () => {}, open: () => { throw new Error("no comms"); } },
  };
  const ranks = [0, 1, 2, 3].map((rank) => ({ rank, host: "localhost", device: "cpu" }));
  const session = new TimelineSession({ ranks, cellStartUs: epochMicros() });
  session.start(io);
  await Promise.all(ranks.map(async ({ rank }) => {
    const recorder = createRankRecorder({ rank, enabled: true, post: (batch) => session.onBatch(structuredClone(batch)) });
    for (let step = 0; step < 3; step++) {
      await recorder.span("forward", () => sleep(rank === 3 ? 30 : 15), { args: { step } });
      await recorder.span("allReduce", () => sleep(8), { cat: "comm", args: { op: "allReduce", bytes: 4 << 20, algorithm: "ring", seq: step, step } });
      await recorder.span("optimizer", () => sleep(3), { args: { step } });
    }
    recorder.flush();
  }));
  session.finish();
  return displays[displays.length - 1];
}

function displayOutput(payload: DisplayPayload): Record<string, unknown> {
  return { output_type: "display_data", data: payload.data, metadata: payload.metadata ?? {} };
}

export async function writeTimelineNotebook(path: string): Promise<void> {
  const good = await recordFourRanks();
  const wrongVersion = { output_type: "display_data", data: { [TIMELINE_MIME_TYPE]: { version: 99, ranks: [], spans: [] }, "text/plain": "timeline" }, metadata: {} };
  const notebook = {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } },
    cells: [
      { cell_type: "code", id: "timeline", execution_count: 1, metadata: {}, source: "# %%distributed -n 4: three steps of forward, allReduce, optimizer", outputs: [displayOutput(good)] },
      { cell_type: "code", id: "bad-payload", execution_count: 2, metadata: {}, source: "# a payload from a future version", outputs: [wrongVersion] },
    ],
  };
  writeFileSync(path, JSON.stringify(notebook, null, 1));
}

/**
 * A notebook with one timeline of `spanCount` spans over 4 ranks (10 us
 * forward/allReduce pairs), built by the kernel's aggregator, to time the
 * renderer's level of detail.
 */
export function writeLargeTimelineNotebook(path: string, spanCount: number): void {
  const ranks = [0, 1, 2, 3].map((rank) => ({ rank, host: "localhost", device: "cpu" }));
  const aggregator = new TimelineAggregator({ ranks, cellStartUs: 0 });
  for (const { rank } of ranks) {
    aggregator.add({
      rank,
      spans: Array.from({ length: spanCount / 4 }, (_, i) => i % 2
        ? { name: "allReduce", cat: "comm" as const, start: i * 10 + rank, dur: 8, args: { op: "allReduce", bytes: 65536, seq: i } }
        : { name: "forward", cat: "compute" as const, start: i * 10, dur: 9, args: { step: Math.floor(i / 100) } }),
    });
  }
  const data = timelineBundle(aggregator.payload(false));
  const notebook = {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } },
    cells: [{ cell_type: "code", id: "large", execution_count: 1, metadata: {}, source: `# ${spanCount} spans`, outputs: [{ output_type: "display_data", data, metadata: {} }] }],
  };
  writeFileSync(path, JSON.stringify(notebook));
}
