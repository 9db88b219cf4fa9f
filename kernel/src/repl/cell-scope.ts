/**
 * Runs compiled cells and keeps what they declare, on the kernel's main
 * thread or inside a rank's worker thread.
 *
 * State lives in one `exports` object shared by every cell of the scope
 * (tslab's converter rewrites references to earlier declarations as
 * `exports.NAME`). It is a Proxy so that `const`, `let` and imports can be
 * declared again by a later cell: the module transform defines them with
 * `Object.defineProperty`, which the proxy turns into plain assignment.
 */
import * as vm from "node:vm";
import type { CompiledCell } from "./cell-compiler";
import { createCellRequire, type CellRequire } from "./cell-require";
import { createDisplayModule } from "./display-api";
import { InterruptedError } from "./errors";
import { jsToCell } from "./cell-position";

export interface RunOptions {
  /** Names the cell in stack traces: frames read `<NAME>:line:col`, e.g. "cell 3". */
  cellName: string;
  /** Aborting it rejects a pending top-level await with InterruptedError. */
  signal?: AbortSignal;
  /** Lets SIGINT stop synchronous code (main thread only: workers get no signals). */
  breakOnSigint?: boolean;
}

export interface RunResult {
  /** The cell's last expression; `undefined` when it has none. */
  value: unknown;
  /** False when the cell ended in a statement or its last expression was `undefined`. */
  hasValue: boolean;
}

/** Where cell arguments wait while the cell's script is evaluated (vm scripts take no parameters). */
const ARGS_SLOT = Symbol.for("distlab.cellArguments");

export class CellScope {
  /** Declarations of the cells run so far, by name. */
  readonly exports: Record<string, unknown>;
  readonly require: CellRequire;
  readonly #state: Record<string, unknown> = {};
  readonly #globals = new Map<string, unknown>();
  /** Compiled cells by their stack-trace file name, to map frames of functions they defined. */
  readonly #cells = new Map<string, { cell: CompiledCell; jsLines: string[]; sourceLines: string[] }>();

  constructor(cwd = process.cwd()) {
    const state = this.#state;
    this.exports = new Proxy(state, {
      defineProperty: (_target, key, attributes) => {
        if (key === "__esModule") return true;
        state[key as string] = attributes.get ? attributes.get() : attributes.value;
        return true;
      },
    });
    const displayModule = createDisplayModule();
    this.require = createCellRequire(cwd, { tslab: displayModule, distlab: displayModule });
    this.#globals.set("prompt", displayModule.prompt);
  }

  /** Provides a global that a chain's prelude declares (e.g. `dist` and `tf` on a rank). */
  setGlobal(name: string, value: unknown): void {
    this.#globals.set(name, value);
  }

  hasVariable(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.#state, name);
  }

  /** Throws a ReferenceError naming the variable when no cell declared it. */
  getVariable(name: string): unknown {
    if (!this.hasVariable(name)) throw new ReferenceError(`${name} is not defined in this scope`);
    return this.#state[name];
  }

  setVariable(name: string, value: unknown): void {
    this.#state[name] = value;
  }

  /** Names of every variable the cells declared. */
  variableNames(): string[] {
    return Object.keys(this.#state);
  }

  async run(cell: CompiledCell, options: RunOptions): Promise<RunResult> {
    const fileName = `<${options.cellName}>`;
    this.#cells.set(fileName, { cell, jsLines: cell.js.split("\n"), sourceLines: cell.source.split("\n") });
    const globals = cell.globals.map((name) => {
      if (!this.#globals.has(name)) {
        throw new Error(`this scope provides no global '${name}', which the ${cell.chain} chain declares (call setGlobal first)`);
      }
      return this.#globals.get(name);
    });
    if (options.breakOnSigint) {
      // A SIGINT that arrived while the cell was compiling is still queued as an event; let its
      // handler run (and abort the signal) now, because once `vm` runs with breakOnSigint it
      // replaces the SIGINT handlers and the queued interrupt would be lost.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (options.signal?.aborted) throw new InterruptedError("Interrupted before the cell started");
    const parameters = ["exports", "require", ...cell.globals].join(", ");
    // The function starts on line 0 (lineOffset -1) so stack lines are the JS's own lines.
    const script =
      `(${cell.hasTopLevelAwait ? "async " : ""}function (${parameters}) {\n${cell.js}\n})` +
      `.apply(undefined, globalThis[Symbol.for("distlab.cellArguments")])`;
    const slot = globalThis as unknown as Record<symbol, unknown>;
    try {
      slot[ARGS_SLOT] = [this.exports, this.require, ...globals];
      let returned: unknown;
      try {
        returned = vm.runInThisContext(script, {
          filename: fileName,
          lineOffset: -1,
          // The stack alone tells where; no source excerpt glued to its top.
          displayErrors: false,
          breakOnSigint: options.breakOnSigint ?? false,
        });
      } finally {
        delete slot[ARGS_SLOT];
      }
      if (cell.hasTopLevelAwait) await untilSettledOrAborted(returned as Promise<unknown>, options.signal);
    } catch (error) {
      throw this.mapErrorSafely(error);
    }
    if (cell.lastExpressionVar === undefined) return { value: undefined, hasValue: false };
    const value = this.#state[cell.lastExpressionVar];
    delete this.#state[cell.lastExpressionVar];
    return { value, hasValue: value !== undefined };
  }

  /**
   * Rewrites an error's stack so frames in cells read `<cell N>:line:col` in the cell's own
   * coordinates, and drops the kernel's frames below the outermost cell frame.
   */
  /** `mapError`, except that a thrown value whose properties or Proxy traps throw is passed on as it is. */
  private mapErrorSafely(error: unknown): unknown {
    try {
      return this.mapError(error);
    } catch {
      return error;
    }
  }

  mapError(error: unknown): unknown {
    if ((error as NodeJS.ErrnoException)?.code === "ERR_SCRIPT_EXECUTION_INTERRUPTED") {
      return new InterruptedError("Interrupted (SIGINT) while the cell ran");
    }
    if (!(error instanceof Error) || typeof error.stack !== "string") return error;
    const lines = error.stack.split("\n");
    let lastCellFrame = -1;
    const mapped: string[] = [];
    for (const line of lines) {
      let wrapperFrame = false;
      let cellFrame = false;
      const rewritten = line.replace(/<([^<>\n]+)>:(\d+):(\d+)/g, (whole, name: string, jsLine: string, jsColumn: string) => {
        const entry = this.#cells.get(`<${name}>`);
        if (!entry) return whole;
        cellFrame = true;
        // The line after the JS is the call that starts the cell: not the user's code.
        if (Number(jsLine) > entry.jsLines.length) wrapperFrame = true;
        const at = jsToCell(
          { jsLines: entry.jsLines, cellLines: entry.cell.cellLines, sourceLines: entry.sourceLines },
          Number(jsLine),
          Number(jsColumn),
        );
        return at ? `<${name}>:${at.line}:${at.column}` : whole;
      });
      if (wrapperFrame) continue;
      if (cellFrame) lastCellFrame = mapped.length;
      mapped.push(rewritten);
    }
    error.stack = (lastCellFrame >= 0 ? mapped.slice(0, lastCellFrame + 1) : mapped).join("\n");
    return error;
  }
}

function untilSettledOrAborted(promise: Promise<unknown>, signal: AbortSignal | undefined): Promise<unknown> {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new InterruptedError("Interrupted while the cell was awaiting"));
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
