/**
 * Registers the `distlab` kernelspec with Jupyter: writes
 * `<data dir>/kernels/distlab/kernel.json`, the file Jupyter reads to start
 * the kernel. The scopes mirror `jupyter kernelspec install`. When this
 * install carries the prebuilt timeline extension (the npm package does),
 * it goes to `<data dir>/labextensions/@distlab/timeline`, where JupyterLab 4
 * finds prebuilt extensions.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { v8StartFlags } from "./v8-start-flags";

export const KERNEL_NAME = "distlab";

export type InstallScope = { kind: "user" } | { kind: "sys-prefix" } | { kind: "prefix"; prefix: string };

export class InstallError extends Error {
  override name = "InstallError";
}

/** Jupyter's per-user data directory, resolved the way jupyter_core does. */
export function userDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JUPYTER_DATA_DIR) return env.JUPYTER_DATA_DIR;
  if (process.platform === "darwin") return join(homedir(), "Library", "Jupyter");
  if (process.platform === "win32") return join(env.APPDATA ?? homedir(), "jupyter");
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "jupyter");
}

/** sys.prefix of the active Python environment: a virtualenv or conda env when one is active, else python3's. */
export function pythonSysPrefix(env: NodeJS.ProcessEnv = process.env): string {
  const active = env.VIRTUAL_ENV || env.CONDA_PREFIX;
  if (active) return active;
  try {
    return execFileSync("python3", ["-c", "import sys; print(sys.prefix)"], { encoding: "utf8" }).trim();
  } catch (error) {
    throw new InstallError(`--sys-prefix needs an active Python environment or python3 on PATH: ${(error as Error).message}`);
  }
}

/** The Jupyter data directory of a scope (the folder holding kernels/ and labextensions/). */
export function jupyterDataDir(scope: InstallScope): string {
  switch (scope.kind) {
    case "user":
      return userDataDir();
    case "sys-prefix":
      return join(pythonSysPrefix(), "share", "jupyter");
    case "prefix":
      return join(resolve(scope.prefix), "share", "jupyter");
  }
}

export function kernelspecDir(scope: InstallScope): string {
  return join(jupyterDataDir(scope), "kernels", KERNEL_NAME);
}

export const LABEXTENSION_NAME = "@distlab/timeline";

/**
 * The prebuilt labextension this install carries: a checkout's built
 * `extension/labextension`, else `labextension/` of the npm package
 * (kernel/package.json's prepack copies it in); undefined when neither exists.
 */
export function bundledLabextension(kernelRoot: string = resolve(__dirname, "..")): string | undefined {
  return [join(kernelRoot, "..", "extension", "labextension"), join(kernelRoot, "labextension")]
    .find((dir) => existsSync(join(dir, "package.json")));
}

/**
 * Copies the bundled labextension into the scope's data directory and
 * returns where it went; undefined when there is none to copy, or when pip
 * manages the one already there (its install.json says so): `pip uninstall`
 * must still find its own files.
 */
export function installLabextension(scope: InstallScope, source: string | undefined = bundledLabextension()): string | undefined {
  if (source === undefined) return undefined;
  const target = join(jupyterDataDir(scope), "labextensions", ...LABEXTENSION_NAME.split("/"));
  if (installedByPip(target)) return undefined;
  try {
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    cpSync(source, target, { recursive: true });
  } catch (error) {
    throw new InstallError(`cannot copy the timeline extension to ${target}: ${(error as Error).message}`);
  }
  return target;
}

function installedByPip(target: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(target, "install.json"), "utf8")) as { packageManager?: string }).packageManager === "python";
  } catch {
    return false;
  }
}

/**
 * kernel.json content. Absolute paths, so Jupyter finds this node and this build whatever its PATH.
 * `v8Flags`: V8 flags the kernel needs from its start (v8-start-flags.ts), for a node like this one.
 */
export function kernelspec(cliPath: string, nodePath: string = process.execPath, v8Flags: readonly string[] = v8StartFlags()): Record<string, unknown> {
  return {
    argv: [nodePath, ...v8Flags, cliPath, "kernel", "--connection-file", "{connection_file}"],
    display_name: "TypeScript (distlab)",
    language: "typescript",
    interrupt_mode: "signal",
    metadata: { debugger: false },
  };
}

/** The built CLI that kernel.json starts; the kernel runs from dist/, never from sources. */
export function builtCliPath(): string {
  const cliPath = resolve(__dirname, "..", "dist", "cli.js");
  if (!existsSync(cliPath)) {
    throw new InstallError(`${cliPath} does not exist; build the kernel first (npm run build)`);
  }
  return cliPath;
}

/** Writes the kernelspec and returns the directory it went to. */
export function installKernelspec(scope: InstallScope): string {
  const dir = kernelspecDir(scope);
  const spec = kernelspec(builtCliPath());
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "kernel.json"), `${JSON.stringify(spec, null, 2)}\n`);
  } catch (error) {
    throw new InstallError(`cannot write the kernelspec to ${dir}: ${(error as Error).message}`);
  }
  return dir;
}
