/**
 * The kernel backend for plain TypeScript cells: compile with the compiler threads
 * against the notebook's chain, run in the notebook's CellScope on the main
 * thread, and answer completion, inspection and completeness requests.
 */
import type {
  CompleteOutcome,
  ExecuteOutcome,
  ExecutionIO,
  InspectOutcome,
  IsCompleteOutcome,
  KernelBackend,
} from "../protocol/backend";
import type { CellCompiling } from "./cell-compiling";
import { CompilerThreads } from "./compiler-threads";
import { CellScope } from "./cell-scope";
import { completeAt, inspectAt, isCompleteCode } from "./code-intel";
import { DeclarationChain } from "./declaration-chain";
import { formatError, formatValue } from "./format";
import { runWithOutput } from "./output-capture";

export interface TypeScriptReplOptions {
  /**
   * Share one compiler with the %%distributed runner (one TypeScript program per chain and kernel).
   * Default: CompilerThreads (a thread per chain); a CellCompiler compiles on this thread instead.
   */
  compiler?: CellCompiling;
  /** Where cells resolve modules from; defaults to the process's cwd. */
  cwd?: string;
}

export class TypeScriptRepl implements KernelBackend {
  readonly compiler: CellCompiling;
  /** Declarations of the notebook's own cells. */
  readonly notebookChain = DeclarationChain.notebook();
  readonly scope: CellScope;
  /** Aborts the run in progress on interrupt(), besides the protocol's own signal. */
  #running: AbortController | undefined;

  constructor(options: TypeScriptReplOptions = {}) {
    this.compiler = options.compiler ?? new CompilerThreads();
    this.scope = new CellScope(options.cwd ?? process.cwd());
  }

  async execute(code: string, io: ExecutionIO): Promise<ExecuteOutcome> {
    const running = new AbortController();
    this.#running = running;
    try {
      const compiled = await this.compiler.compile(code, this.notebookChain);
      const { value, hasValue } = await runWithOutput(io, () =>
        this.scope.run(compiled, {
          cellName: `cell ${io.executionCount}`,
          signal: AbortSignal.any([io.interruptSignal, running.signal]),
          breakOnSigint: true,
        }),
      );
      this.notebookChain.advance(compiled);
      const data = hasValue ? await formatValue(value) : undefined;
      return data ? { status: "ok", result: { data, metadata: {} } } : { status: "ok" };
    } catch (error) {
      return { status: "error", ...formatError(error) };
    } finally {
      if (this.#running === running) this.#running = undefined;
    }
  }

  async complete(code: string, cursorPos: number): Promise<CompleteOutcome> {
    return completeAt(this.compiler, this.notebookChain, code, cursorPos);
  }

  async inspect(code: string, cursorPos: number, detailLevel: 0 | 1): Promise<InspectOutcome> {
    return inspectAt(this.compiler, this.notebookChain, code, cursorPos, detailLevel);
  }

  async isComplete(code: string): Promise<IsCompleteOutcome> {
    return isCompleteCode(code);
  }

  /** Stops a pending top-level await; synchronous code stops through SIGINT (breakOnSigint). */
  interrupt(): void {
    this.#running?.abort();
  }

  async shutdown(_restart: boolean): Promise<void> {
    this.#running?.abort();
    this.compiler.close();
  }

  hasVariable(name: string): boolean {
    return this.scope.hasVariable(name);
  }

  getVariable(name: string): unknown {
    return this.scope.getVariable(name);
  }

  /** Sets a notebook variable and declares it (type `typeText`) so later cells type-check against it. */
  async setVariable(name: string, value: unknown, typeText = "any"): Promise<void> {
    await this.compiler.declareVariable(this.notebookChain, name, typeText);
    this.scope.setVariable(name, value);
  }

  /** Declares `name` in `chain` (the notebook's by default), e.g. after `%dist pull NAME`. */
  async declareVariable(name: string, typeText = "any", chain: DeclarationChain = this.notebookChain): Promise<void> {
    await this.compiler.declareVariable(chain, name, typeText);
  }
}
