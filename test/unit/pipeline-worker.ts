// One rank of a ThreadWorld (comm-harness.ts) for the pipeline tests: the
// rank's real shared-memory communicator, and a real span recorder (the one
// a %%distributed cell's rank records its timeline with) whose spans the
// scenarios return, so the tests measure the bubble from recorded spans.
import { parentPort, workerData } from "node:worker_threads";
import { attachShmCommunicator } from "../../kernel/src/comm";
import { createRankRecorder, type RawSpan } from "../../kernel/src/trace";
import { PIPELINE_SCENARIOS } from "./pipeline-scenarios";

const { init, rank, options } = workerData;
const comm = attachShmCommunicator(init, rank, options);
const spans: RawSpan[] = [];
const recorder = createRankRecorder({ rank, enabled: true, post: (batch) => spans.push(...batch.spans) });

parentPort!.on("message", async (m: { id: number; name: string; arg: unknown }) => {
  try {
    const scenario = PIPELINE_SCENARIOS[m.name];
    if (!scenario) throw new Error(`unknown pipeline scenario ${m.name}`);
    spans.length = 0;
    const value = await scenario({ comm, recorder, spans }, m.arg);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: `${err.message}\n${err.stack}` } });
  }
});
