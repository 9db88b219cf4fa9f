/**
 * Makes cell type-checking independent of the notebook's folder.
 *
 * tslab's converter resolves modules from the process's cwd (the notebook's
 * folder), which usually has no node_modules. tslab already forwards
 * `<cwd>/node_modules/tslab/**` to its own package; this does the same for
 * two more cases, by wrapping the file-system functions of the TypeScript
 * instance that tslab uses (its converter takes no host or option for it):
 *
 * - `<cwd>/node_modules/distlab/**` is served from memory (cell-types.ts):
 *   the in-cell `distlab` module and the prelude globals. This wins over a
 *   real `distlab` package, as `require("distlab")` in a cell does at run time.
 * - any other `<cwd>/node_modules/distlab/**` file is read from the kernel's
 *   own compiled tree (`distlab/techniques`, and the `dist` types the virtual
 *   module re-exports from `distlab/cluster/dist-api`), so their types and
 *   the cell's `@tensorflow/tfjs` types are one and the same.
 * - any other `<cwd>/node_modules/<pkg>/**` that does not exist falls back to
 *   the kernel's own node_modules (e.g. `@tensorflow/tfjs`), mirroring the
 *   run-time `require` of cell-require.ts. `@types/*` is left alone so that
 *   tslab's choice of type roots is unchanged.
 */
import * as path from "node:path";
import { VIRTUAL_DISTLAB_FILES } from "./cell-types";

type TsSys = {
  fileExists(path: string): boolean;
  readFile(path: string, encoding?: string): string | undefined;
  directoryExists(path: string): boolean;
};

/** The node_modules folder holding the kernel's dependencies (tslab, @tensorflow/tfjs, ...). */
export function kernelNodeModules(): string {
  return path.dirname(path.dirname(require.resolve("tslab/package.json")));
}

let installedFor: string | undefined;

/** Installs the forwarding for `cwd`; the converter must be created with the same cwd. */
export function installTypeResolution(cwd: string): void {
  if (installedFor === cwd) return;
  if (installedFor !== undefined) {
    throw new Error(`type resolution is already installed for ${installedFor}; one cwd per process (asked for ${cwd})`);
  }
  installedFor = cwd;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sys = (require("@tslab/typescript-for-tslab") as { sys: TsSys }).sys;
  const slash = (p: string): string => p.replace(/\\/g, "/");
  const cwdModules = slash(path.join(cwd, "node_modules")) + "/";
  const distlabDir = cwdModules + "distlab";
  const fallbackModules = slash(kernelNodeModules()) + "/";
  const original = { fileExists: sys.fileExists, readFile: sys.readFile, directoryExists: sys.directoryExists };

  const virtualFile = (p: string): string | undefined =>
    p.startsWith(distlabDir + "/") ? VIRTUAL_DISTLAB_FILES[p.slice(distlabDir.length + 1)] : undefined;
  const isDistlab = (p: string): boolean => p === distlabDir || p.startsWith(distlabDir + "/");
  // kernel/dist (or kernel/src when run from source): the parent of this file's folder
  const libraryRoot = slash(path.resolve(__dirname, ".."));
  /** `<cwd>/node_modules/distlab/techniques/x.d.ts` -> `<kernel dist>/techniques/x.d.ts`. */
  const libraryFile = (p: string): string | undefined => {
    if (!p.startsWith(distlabDir + "/")) return undefined;
    const rest = p.slice(distlabDir.length + 1);
    // The library folders, and for types every other kernel file their declarations import.
    return VIRTUAL_DISTLAB_FILES[rest] === undefined ? `${libraryRoot}/${rest}` : undefined;
  };
  const libraryExists = (p: string, exists: (q: string) => boolean): boolean => {
    const real = libraryFile(p);
    return real !== undefined && exists(real);
  };
  /** `<cwd>/node_modules/x/y` -> `<kernel node_modules>/x/y`, for paths that may fall back. */
  const fallback = (p: string): string | undefined => {
    if (!p.startsWith(cwdModules)) return undefined;
    const rest = p.slice(cwdModules.length);
    if (rest === "" || rest.startsWith("@types/") || rest === "@types" || rest.startsWith("tslab")) return undefined;
    return fallbackModules + rest;
  };

  sys.fileExists = (p: string): boolean => {
    p = slash(p);
    if (isDistlab(p)) return virtualFile(p) !== undefined || libraryExists(p, original.fileExists);
    if (original.fileExists(p)) return true;
    const other = fallback(p);
    return other !== undefined && original.fileExists(other);
  };
  sys.readFile = (p: string, encoding?: string): string | undefined => {
    p = slash(p);
    if (isDistlab(p)) {
      const library = libraryFile(p);
      return virtualFile(p) ?? (library !== undefined && original.fileExists(library) ? original.readFile(library, encoding) : undefined);
    }
    if (original.fileExists(p)) return original.readFile(p, encoding);
    const other = fallback(p);
    return other !== undefined ? original.readFile(other, encoding) : undefined;
  };
  sys.directoryExists = (p: string): boolean => {
    p = slash(p).replace(/\/$/, "");
    if (isDistlab(p)) return p === distlabDir || libraryExists(p, original.directoryExists);
    if (original.directoryExists(p)) return true;
    const other = fallback(p);
    return other !== undefined && original.directoryExists(other);
  };
}
