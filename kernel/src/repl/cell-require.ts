/**
 * The `require` that cell code gets.
 *
 * Modules resolve from the notebook's folder first (the user's own
 * packages), then from the kernel's own dependencies, so `@tensorflow/tfjs`
 * works from any folder. `tslab` and `distlab` are the in-cell display API
 * (display-api.ts), not the packages on disk; `distlab/techniques`,
 * `distlab/models` and `distlab/data` are the kernel's own compiled folders.
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import { DISTLAB_LIBRARY_DIRS } from "./cell-types";
import { afterCellRequire } from "../compute/plain-cells";

export type CellRequire = NodeJS.Require;

export function createCellRequire(cwd: string, inCellModules: Readonly<Record<string, unknown>>): CellRequire {
  const fromCwd = createRequire(path.join(cwd, "__cell__.js"));
  const fromKernel = createRequire(__filename);
  const isMissing = (error: unknown, id: string): boolean =>
    (error as NodeJS.ErrnoException)?.code === "MODULE_NOT_FOUND" && String((error as Error).message).includes(`'${id}'`);

  const resolve = ((id: string, options?: { paths?: string[] }) => {
    try {
      return fromCwd.resolve(id, options);
    } catch (error) {
      if (!isMissing(error, id)) throw error;
      try {
        return fromKernel.resolve(id, options);
      } catch {
        throw notFound(id, cwd, error as Error);
      }
    }
  }) as CellRequire["resolve"];
  resolve.paths = (request: string) => fromCwd.resolve.paths(request);

  const cellRequire = ((id: string) => {
    if (Object.prototype.hasOwnProperty.call(inCellModules, id)) return inCellModules[id];
    const library = /^distlab\/([a-z]+)$/.exec(id)?.[1];
    // One module instance per thread, shared with the kernel's own code on that thread (same tf).
    if (library !== undefined && DISTLAB_LIBRARY_DIRS.includes(library)) return fromKernel(path.join(__dirname, "..", library));
    // Resolve first so that a module found in the cwd but failing to load reports its own error.
    const loaded = fromCwd(resolve(id));
    afterCellRequire(id);
    return loaded;
  }) as CellRequire;
  cellRequire.resolve = resolve;
  cellRequire.cache = fromCwd.cache;
  cellRequire.main = undefined;
  cellRequire.extensions = fromCwd.extensions;
  return cellRequire;
}

function notFound(id: string, cwd: string, cause: Error): Error {
  const error = new Error(`Cannot find module '${id}' from ${cwd} nor among the kernel's packages`, { cause });
  (error as NodeJS.ErrnoException).code = "MODULE_NOT_FOUND";
  return error;
}
