// One rank of a ThreadWorld (comm-harness.ts): attaches to the shared world
// and runs scenarios on request.
import { parentPort, workerData } from "node:worker_threads";
import { attachShmCommunicator, type CommSpan } from "../../kernel/src/comm";
import { SCENARIOS } from "./comm-scenarios";

const { init, rank, options } = workerData;
const spans: CommSpan[] = [];
const comm = attachShmCommunicator(init, rank, {
  ...options,
  onSpan: options.spans ? (s: CommSpan) => spans.push(s) : undefined,
});

parentPort!.on("message", async (m: { id: number; name: string; arg: unknown }) => {
  try {
    const scenario = SCENARIOS[m.name];
    if (!scenario) throw new Error(`unknown scenario ${m.name}`);
    const value = await scenario(comm, m.arg, spans);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: err.message } });
  }
});
