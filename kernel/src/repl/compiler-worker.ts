/**
 * The thread of one declaration chain's compiler (compiler-threads.ts starts
 * it): creates the chain's TypeScript program as soon as it starts (when
 * asked to), then answers requests in arrival order. Requests that arrive
 * while the program is being created wait in the thread's message queue.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CompilerService } from "./compiler-service";
import { PROGRAM_CREATED, type CompilerReply, type CompilerRequest, type CompilerWorkerData } from "./compiler-messages";

const { chain, createProgram } = workerData as CompilerWorkerData;
const service = new CompilerService(chain);
const port = parentPort!;

port.on("message", (request: CompilerRequest) => port.postMessage(service.answer(request)));

// After the listener: a request posted meanwhile is queued, not lost.
if (createProgram) {
  service.createProgram();
  port.postMessage({ id: PROGRAM_CREATED, ok: true, value: null } satisfies CompilerReply);
}
