/**
 * Answers a chain's compiler requests: the part shared by the compiler's
 * two homes, a worker thread (compiler-worker.ts) and a process started
 * from a V8 snapshot of a created program (compiler-snapshot-entry.ts).
 */
import { CellCompiler } from "./cell-compiler";
import { DeclarationChain } from "./declaration-chain";
import { CompileError } from "./errors";
import type { CompilerReply, CompilerRequest, CompilerWorkerData } from "./compiler-messages";

export class CompilerService {
  readonly compiler = new CellCompiler();

  constructor(private readonly chain: CompilerWorkerData["chain"]) {}

  /** This chain with the declarations a request brings ("" for none). */
  chainWith(declarations: string): DeclarationChain {
    const chain = new DeclarationChain(this.chain.name, this.chain.prelude, this.chain.globalNames);
    chain.replaceDeclarations(declarations);
    return chain;
  }

  /** Creates the chain's TypeScript program (one to two seconds of CPU). */
  createProgram(): void {
    this.compiler.createProgram(this.chainWith(""));
  }

  /** The reply to one request; never throws (what the compiler threw travels in the reply). */
  answer(request: CompilerRequest): CompilerReply {
    try {
      return { id: request.id, ok: true, value: this.#value(request) };
    } catch (error) {
      if (error instanceof CompileError) return { id: request.id, ok: false, diagnostics: error.diagnostics };
      const { name, message, stack } = error instanceof Error ? error : { name: "Error", message: String(error), stack: undefined };
      return { id: request.id, ok: false, error: { name, message, ...(stack ? { stack } : {}) } };
    }
  }

  #value(request: CompilerRequest): unknown {
    const chain = this.chainWith(request.declarations);
    switch (request.op) {
      case "compile":
        return this.compiler.compile(request.code, chain);
      case "complete":
        return this.compiler.complete(request.code, request.offset, chain);
      case "inspect":
        return this.compiler.inspect(request.code, request.offset, chain);
    }
  }
}
