// Runs a function's source on a worker thread with its own environment: the compute addons
// choose their library and passes once per thread, so each setting to test gets a thread.
import { Worker } from "node:worker_threads";

/** Runs `body` (the source of `(require) => value`, may be async) on a new worker thread with `env` added to this process's. */
export function inWorker(body: string, env: NodeJS.ProcessEnv = {}): Promise<unknown> {
  const source = `require("tsx/cjs"); const { parentPort } = require("node:worker_threads");
    Promise.resolve().then(() => (${body})(require)).then((v) => parentPort.postMessage({ v }), (e) => parentPort.postMessage({ e: String(e && e.message || e) }));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, env: { ...process.env, ...env } });
    worker.once("message", (m: { v?: unknown; e?: string }) => (m.e !== undefined ? reject(new Error(m.e)) : resolve(m.v)));
    worker.once("error", reject);
  });
}
