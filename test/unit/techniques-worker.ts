// One rank of a ThreadWorld (comm-harness.ts) that runs technique scenarios
// (techniques-scenarios.ts): the rank's real shared-memory communicator is the
// `dist` the techniques get, as in a %%distributed cell.
import { parentPort, workerData } from "node:worker_threads";
import { attachShmCommunicator } from "../../kernel/src/comm";
import { TECHNIQUE_SCENARIOS } from "./techniques-scenarios";

const { init, rank, options } = workerData;
const comm = attachShmCommunicator(init, rank, options);

parentPort!.on("message", async (m: { id: number; name: string; arg: unknown }) => {
  try {
    const scenario = TECHNIQUE_SCENARIOS[m.name];
    if (!scenario) throw new Error(`unknown technique scenario ${m.name}`);
    const value = await scenario(comm, m.arg);
    parentPort!.postMessage({ id: m.id, rank, ok: true, value });
  } catch (e) {
    const err = e as Error;
    parentPort!.postMessage({ id: m.id, rank, ok: false, error: { name: err.name, message: `${err.message}\n${err.stack}` } });
  }
});
