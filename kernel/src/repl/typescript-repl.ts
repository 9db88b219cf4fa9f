/**
 * The kernel backend for plain TypeScript cells: compile with CellCompiler
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
import { CellCompiler } from "./cell-compiler";
import { CellScope } from "./cell-scope";
import { completeAt, inspectAt, isCompleteCode } from "./code-intel";
import { warmUpWhenIdle } from "./compiler-warm-up";
import { DeclarationChain } from "./declaration-chain";
import { formatError, formatValue } from "./format";
import { runWithOutput } from "./output-capture";

export interface TypeScriptReplOptions {
  /** Share one compiler with the %%distributed runner (one TypeScript program per kernel). */
  compiler?: CellCompiler;
  /** Where cells resolve modules from; defaults to the process's cwd. */
  cwd?: string;
}

export class TypeScriptRepl implements KernelBackend {
  readonly compiler: CellCompiler;
  /** Declarations of the notebook's own cells. */
  readonly notebookChain = DeclarationChain.notebook();
  readonly scope: CellScope;
  /** Aborts the run in progress on interrupt(), besides the protocol's own signal. */
  #running: AbortController | undefined;
  /** Stops the compiler warm-up still to come. */
  #stopWarmUp: (() => void) | undefined;

  constructor(options: TypeScriptReplOptions = {}) {
    this.compiler = options.compiler ?? new CellCompiler();
    this.scope = new CellScope(options.cwd ?? process.cwd());
  }

  async execute(code: string, io: ExecutionIO): Promise<ExecuteOutcome> {
    const running = new AbortController();
    this.#running = running;
    try {
      const compiled = this.compiler.compile(code, this.notebookChain);
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

  /** Creates the notebook's and the ranks' TypeScript programs while the kernel is idle (compiler-warm-up.ts). */
  warmUp(idleMs: () => number): void {
    this.#stopWarmUp?.();
    this.#stopWarmUp = warmUpWhenIdle(this.compiler, [this.notebookChain, DeclarationChain.ranks()], idleMs);
  }

  async shutdown(_restart: boolean): Promise<void> {
    this.#stopWarmUp?.();
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
  setVariable(name: string, value: unknown, typeText = "any"): void {
    this.compiler.declareVariable(this.notebookChain, name, typeText);
    this.scope.setVariable(name, value);
  }

  /** Declares `name` in `chain` (the notebook's by default), e.g. after `%dist pull NAME`. */
  declareVariable(name: string, typeText = "any", chain: DeclarationChain = this.notebookChain): void {
    this.compiler.declareVariable(chain, name, typeText);
  }
}
