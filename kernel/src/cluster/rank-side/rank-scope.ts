/**
 * A rank's scope: the REPL's `CellScope` (declarations kept between cells,
 * last value, stacks mapped to the cell's lines) with the rank's globals,
 * and the rank's prints and displays routed to the kernel over its port
 * (a thread's MessagePort or a process's IPC channel).
 */
import type { CompiledCell } from "../../repl/cell-compiler";
import { CellScope } from "../../repl/cell-scope";
import { setActiveOutput, type CellOutput } from "../../repl/output-capture";
import type { RankEvent } from "../rank-messages";
import type { RankPort } from "./rank-port";

export class RankScope {
  private readonly scope = new CellScope();
  /** Cell whose output the rank is producing; late prints go to the last cell, as in IPython. */
  private cellId = 0;

  constructor(
    port: RankPort,
    globals: Readonly<Record<string, unknown>>,
  ) {
    for (const [name, value] of Object.entries(globals)) this.scope.setGlobal(name, value);
    setActiveOutput(this.outputTo(port));
  }

  setGlobal(name: string, value: unknown): void {
    this.scope.setGlobal(name, value);
  }

  /** Resolves to the last expression's value (undefined when none); rejects with a mapped error. */
  async run(cell: CompiledCell, cellId: number, cellName: string, signal: AbortSignal): Promise<unknown> {
    this.cellId = cellId;
    const { value } = await this.scope.run(cell, { cellName, signal });
    return value;
  }

  /** Frames in this rank's cells rewritten to the cells' own lines (see CellScope.mapError). */
  mapError(error: unknown): unknown {
    return this.scope.mapError(error);
  }

  get(name: string): unknown {
    return this.scope.getVariable(name);
  }

  set(name: string, value: unknown): void {
    this.scope.setVariable(name, value);
  }

  private outputTo(port: RankPort): CellOutput {
    const post = (event: RankEvent): void => port.postMessage(event);
    return {
      stream: (name, text) => post({ kind: "stream", cellId: this.cellId, name, text }),
      display: (payload, update) => post({ kind: "display", cellId: this.cellId, payload, update: update === true }),
      clearOutput: (wait) => post({ kind: "clear", cellId: this.cellId, wait: wait === true }),
      input: () => Promise.reject(new Error("input is not available on a rank: ranks have no stdin; read it in a plain cell and %dist push it")),
    };
  }
}
