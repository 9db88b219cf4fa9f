/**
 * Compiler snapshots: a chain's created TypeScript program, kept as a V8
 * startup snapshot so that a later kernel has it in a fraction of the time
 * creating it takes.
 *
 * Creating the ranks chain's program is about 1.5 s of CPU (some 840
 * declaration files: parsing, binding, the checker's globals) and a first
 * `%%distributed` cell sent as the kernel starts waits for it. V8 can write
 * a heap to a file and start a process from it (`node --build-snapshot`,
 * `--snapshot-blob`); a process started from a blob that holds the created
 * program answers its first request within a few hundred milliseconds of
 * its start. A worker thread cannot start from a blob, so a chain with a
 * snapshot compiles in a child process instead of a thread, over the same
 * messages (compiler-messages.ts).
 *
 * The first kernel in a folder has no snapshot: its chains' programs are
 * created on threads as before, and once the kernel is quiet a builder
 * process (compiler-snapshot-build.ts) makes one per chain, at the lowest
 * CPU priority, so a cell that starts meanwhile keeps its cores. A blob is
 * tied to what went into it: the key covers Node's version and executable,
 * the V8 flags, the chain's prelude and the working directory (the
 * program's paths start there); the manifest lists every file the program
 * and the bundled compiler read, and one changed since the build (a package
 * upgraded, a declaration file edited) makes the kernel ignore the blob and
 * build a new one.
 *
 * Off with DISTLAB_COMPILER_SNAPSHOT=0. The cache folder is
 * DISTLAB_COMPILER_SNAPSHOT_DIR, else `$XDG_CACHE_HOME/distlab/compiler-snapshots`,
 * else `~/.cache/distlab/compiler-snapshots`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { homedir, setPriority } from "node:os";
import { extname, join } from "node:path";
import type { CompilerReply, CompilerWorkerData } from "./compiler-messages";
import { changedInput, SNAPSHOT_MANIFEST_VERSION, type SnapshotBuildRequest, type SnapshotManifest } from "./compiler-snapshot-files";
import { V8_START_FLAGS } from "../v8-start-flags";

/** Set to "0" to never use or build compiler snapshots. */
export const SNAPSHOT_ENV = "DISTLAB_COMPILER_SNAPSHOT";
/** Overrides the cache folder. */
export const SNAPSHOT_DIR_ENV = "DISTLAB_COMPILER_SNAPSHOT_DIR";

/** Where background builds write why they failed, in the cache folder. */
export const BUILD_ERRORS_LOG = "build-errors.log";

/** The lowest CPU priority: the builder runs only on a core that is otherwise idle. */
const BUILDER_NICENESS = 19;

const FROM_SOURCE = extname(__filename) === ".ts";
const BUILDER_FILE = join(__dirname, `compiler-snapshot-build${extname(__filename)}`);

/** Whether the kernel uses and builds snapshots (the environment's say). */
export function snapshotsWanted(): boolean {
  return process.env[SNAPSHOT_ENV] !== "0";
}

export function snapshotDir(): string {
  const override = process.env[SNAPSHOT_DIR_ENV];
  if (override) return override;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(cache, "distlab", "compiler-snapshots");
}

/**
 * This process's V8 flags: a blob is built with them and loads only under them. (`distlab
 * snapshots` passes the flags the kernelspec starts kernels with instead.)
 */
function v8Flags(): string[] {
  return process.execArgv.filter((flag) => V8_START_FLAGS.includes(flag));
}

type Chain = CompilerWorkerData["chain"];

/** The cache key of `chain`'s snapshot for this process: hex, 24 characters. */
export function snapshotKey(chain: Chain, cwd = process.cwd(), flags = v8Flags()): string {
  const what = { node: process.version, exec: process.execPath, flags, chain, cwd, version: SNAPSHOT_MANIFEST_VERSION };
  return createHash("sha256").update(JSON.stringify(what)).digest("hex").slice(0, 24);
}

/** The blob to start `chain`'s compiler from, or why there is none (no build yet, an input changed). */
export function usableSnapshot(chain: Chain, dir = snapshotDir(), flags = v8Flags()): { blob: string } | { missing: string } {
  const stem = join(dir, snapshotKey(chain, process.cwd(), flags));
  let manifest: SnapshotManifest;
  try {
    manifest = JSON.parse(readFileSync(`${stem}.json`, "utf8")) as SnapshotManifest;
  } catch {
    return { missing: "not built yet" };
  }
  if (manifest.version !== SNAPSHOT_MANIFEST_VERSION) return { missing: `manifest version ${manifest.version}` };
  const changed = changedInput(manifest);
  if (changed !== undefined) return { missing: `${changed} changed since it was built` };
  return { blob: `${stem}.blob` };
}

/** Forgets `blob` (its manifest first), after a process failed to start from it. */
export function discardSnapshot(blob: string): void {
  const stem = blob.slice(0, -".blob".length);
  rmSync(`${stem}.json`, { force: true });
  rmSync(blob, { force: true });
}

/** The replies and the end of a compiler process started from a blob. */
export interface SnapshotProcessEvents {
  onReply(reply: CompilerReply): void;
  onStop(reason: string): void;
}

/** Starts a compiler process from `blob`; it sends PROGRAM_CREATED as soon as it runs. */
export function startFromSnapshot(blob: string, events: SnapshotProcessEvents): ChildProcess {
  const child = spawn(process.execPath, [...v8Flags(), "--snapshot-blob", blob], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "advanced",
  });
  child.on("message", (reply: CompilerReply) => events.onReply(reply));
  child.on("error", (error) => events.onStop(`${error.name}: ${error.message}`));
  child.on("exit", (code, signal) => events.onStop(signal ? `signal ${signal}` : `exit code ${code}`));
  return child;
}

/**
 * Starts building `chain`'s snapshot in a process group of its own at the lowest priority;
 * `onEnd` gets its exit code. The build never keeps the kernel alive, and a kernel that ends
 * meanwhile leaves it to finish (seconds) for the next kernel: a group of its own is not
 * signalled with the kernel's.
 */
export function buildSnapshot(chain: Chain, onEnd: (code: number | null) => void, dir = snapshotDir()): ChildProcess {
  const builder = startBuilder(chain, dir, v8Flags(), true);
  builder.unref();
  if (builder.pid !== undefined) {
    try {
      setPriority(builder.pid, BUILDER_NICENESS);
    } catch {
      // Already gone, or not allowed here: it then builds at normal priority.
    }
  }
  builder.on("exit", (code) => onEnd(code));
  builder.on("error", () => onEnd(null));
  return builder;
}

/**
 * `background`: a process group of its own, and no stdio: a build may outlive its kernel, and an
 * output it held open would keep whoever reads the kernel's (a Jupyter server, a test) waiting
 * for it. Its failures then go to `build-errors.log` in the cache folder.
 */
function startBuilder(chain: Chain, dir: string, flags: string[], background: boolean): ChildProcess {
  const request: SnapshotBuildRequest = { dir, key: snapshotKey(chain, process.cwd(), flags), cwd: process.cwd(), chain, v8Flags: flags };
  const loader = FROM_SOURCE ? ["--require", require.resolve("tsx/cjs")] : [];
  const args = [...loader, BUILDER_FILE, JSON.stringify(request)];
  if (!background) return spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  let log: number | "ignore" = "ignore";
  try {
    mkdirSync(dir, { recursive: true });
    log = openSync(join(dir, BUILD_ERRORS_LOG), "a");
  } catch {
    // no log then
  }
  const builder = spawn(process.execPath, args, { stdio: ["ignore", "ignore", log], detached: true });
  if (typeof log === "number") closeSync(log);
  return builder;
}

/**
 * `distlab snapshots`: builds now, in the foreground and one after the other, the snapshots that
 * kernels started in this folder with `flags` (the kernelspec's) would use and do not have yet,
 * so that even the first kernel there starts its compilers from them. Reports a line per chain;
 * resolves to whether every chain has a usable snapshot at the end.
 */
export async function buildMissingSnapshots(chains: Chain[], flags: string[], report: (line: string) => void, dir = snapshotDir()): Promise<boolean> {
  let allUsable = true;
  for (const chain of chains) {
    const before = usableSnapshot(chain, dir, flags);
    if ("blob" in before) {
      report(`${chain.name} chain: up to date (${before.blob})`);
      continue;
    }
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      const builder = startBuilder(chain, dir, flags, false);
      builder.on("exit", resolve);
      builder.on("error", () => resolve(null));
    });
    const after = usableSnapshot(chain, dir, flags);
    if ("blob" in after) report(`${chain.name} chain: built in ${((Date.now() - started) / 1000).toFixed(1)} s (${before.missing}): ${after.blob}`);
    else {
      allUsable = false;
      report(`${chain.name} chain: not built (builder exit code ${code}; ${after.missing}${code === 0 ? "; another build held the cache's lock" : ""})`);
    }
  }
  return allUsable;
}

