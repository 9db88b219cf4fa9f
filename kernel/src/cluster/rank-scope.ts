/**
 * What a rank needs from the REPL's runtime: a scope that keeps the rank's
 * declarations between cells, runs a cell compiled by the kernel, returns
 * its last value, and maps error stacks to the cell's own lines.
 */
import type { RemoteErrorData } from "../errors";
import type { CompiledCell } from "../repl/cell-compiler";

export interface RankScope {
  /** Runs the cell with `globals` (dist, tf, prompt) in view; resolves to the last expression's value. */
  run(cell: CompiledCell, globals: Readonly<Record<string, unknown>>): Promise<unknown>;
  get(name: string): unknown;
  set(name: string, value: unknown): void;
  mapError(error: RemoteErrorData): RemoteErrorData;
}

/** Interim scope over the compiled CommonJS body: declarations live on one `exports` object. */
export function createRankScope(): RankScope {
  const exportsObject: Record<string, unknown> = {};
  return {
    async run(cell, globals) {
      const names = cell.globals;
      const code = cell.hasTopLevelAwait ? `return (async () => {\n${cell.js}\n})();` : cell.js;
      const body = new Function("exports", "require", ...names, code) as (...args: unknown[]) => unknown;
      await body(exportsObject, require, ...names.map((name) => globals[name]));
      return cell.lastExpressionVar ? exportsObject[cell.lastExpressionVar] : undefined;
    },
    get(name) {
      if (!Object.hasOwn(exportsObject, name)) throw new ReferenceError(`${name} is not defined on this rank`);
      return exportsObject[name];
    },
    set(name, value) {
      exportsObject[name] = value;
    },
    mapError: (error) => error,
  };
}
