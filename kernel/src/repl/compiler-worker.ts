/**
 * The thread of one declaration chain's compiler (compiler-threads.ts starts
 * it): holds a CellCompiler, creates the chain's TypeScript program as soon
 * as it starts (when asked to), then answers requests in arrival order.
 * Requests that arrive while the program is being created wait in the
 * thread's message queue.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CellCompiler } from "./cell-compiler";
import { DeclarationChain } from "./declaration-chain";
import { CompileError } from "./errors";
import { PROGRAM_CREATED, type CompilerReply, type CompilerRequest, type CompilerWorkerData } from "./compiler-messages";

const { chain: chainInit, createProgram } = workerData as CompilerWorkerData;
const compiler = new CellCompiler();
const port = parentPort!;

/** This thread's chain with the declarations a request brings. */
function chainWith(declarations: string): DeclarationChain {
  const chain = new DeclarationChain(chainInit.name, chainInit.prelude, chainInit.globalNames);
  chain.replaceDeclarations(declarations);
  return chain;
}

function answer(request: CompilerRequest): unknown {
  const chain = chainWith(request.declarations);
  switch (request.op) {
    case "compile":
      return compiler.compile(request.code, chain);
    case "complete":
      return compiler.complete(request.code, request.offset, chain);
    case "inspect":
      return compiler.inspect(request.code, request.offset, chain);
  }
}

port.on("message", (request: CompilerRequest) => {
  let reply: CompilerReply;
  try {
    reply = { id: request.id, ok: true, value: answer(request) };
  } catch (error) {
    if (error instanceof CompileError) reply = { id: request.id, ok: false, diagnostics: error.diagnostics };
    else {
      const { name, message, stack } = error instanceof Error ? error : { name: "Error", message: String(error), stack: undefined };
      reply = { id: request.id, ok: false, error: { name, message, ...(stack ? { stack } : {}) } };
    }
  }
  port.postMessage(reply);
});

// After the listener: a request posted meanwhile is queued, not lost.
if (createProgram) {
  compiler.createProgram(chainWith(""));
  port.postMessage({ id: PROGRAM_CREATED, ok: true, value: null } satisfies CompilerReply);
}
