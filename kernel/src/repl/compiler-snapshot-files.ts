/**
 * A compiler snapshot's files and the messages that build one: shared by the
 * kernel (compiler-snapshot.ts), the builder (compiler-snapshot-build.ts) and
 * the code inside the snapshot (compiler-snapshot-entry.ts).
 *
 * In the cache folder, per chain, working directory, Node and V8 flags (the
 * key): `<key>.blob`, the V8 startup snapshot (about 70 MB), and
 * `<key>.json`, its SnapshotManifest.
 */
import { openSync, closeSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { CompilerWorkerData } from "./compiler-messages";

/** The environment variable that carries SnapshotBuildInput (JSON) into `node --build-snapshot`. */
export const SNAPSHOT_BUILD_ENV = "DISTLAB_COMPILER_SNAPSHOT_BUILD";

/** Bumped when the manifest's or the blob's meaning changes; an older manifest is not used. */
export const SNAPSHOT_MANIFEST_VERSION = 1;

/** What the builder process is asked to build (its one argument, JSON). */
export interface SnapshotBuildRequest {
  dir: string;
  key: string;
  /** The kernel's working directory: the program's paths start there (tslab resolves from it). */
  cwd: string;
  chain: CompilerWorkerData["chain"];
  /** V8 flags the blob is built with; a process started from it must have the same. */
  v8Flags: string[];
}

/** The input of the code inside the snapshot, at build time. */
export interface SnapshotBuildInput {
  chain: CompilerWorkerData["chain"];
  /** Where to write the WatchedPaths (JSON). */
  watchedOut: string;
}

/** What the chain's program depends on: the paths it watches (where it looked) and the files it read. */
export interface WatchedPaths {
  files: string[];
  directories: string[];
  /** The files read from disk (the watched paths may name a notebook folder's node_modules that the kernel's stand in for). */
  read: string[];
}

/** One input as it was at build time; size and mtime are absent for a path that did not exist. */
export interface InputStamp {
  path: string;
  size?: number;
  mtimeMs?: number;
}

export interface SnapshotManifest {
  version: number;
  key: string;
  cwd: string;
  chain: string;
  /** Every file the blob depends on: the bundle's sources and the program's watched paths. */
  inputs: InputStamp[];
}

/** `path` as it is now. */
export function inputStamp(path: string): InputStamp {
  const stat = statSync(path, { throwIfNoEntry: false });
  return stat ? { path, size: stat.size, mtimeMs: stat.mtimeMs } : { path };
}

/** The first input that is not as the manifest recorded it, or undefined when all are. */
export function changedInput(manifest: SnapshotManifest): string | undefined {
  for (const recorded of manifest.inputs) {
    const now = inputStamp(recorded.path);
    if (now.size !== recorded.size || now.mtimeMs !== recorded.mtimeMs) return recorded.path;
  }
  return undefined;
}

/** A build lock older than this is taken over whatever its pid, milliseconds (builds give up after 10 minutes). */
export const BUILD_LOCK_STALE_MS = 11 * 60_000;

/**
 * Takes the cache folder's build lock: at most one snapshot build runs on a machine at a time, so
 * kernels started in many folders at once (a test suite) do not start a build each, every one
 * waiting at the lowest priority with a few hundred MB held. Returns the release, or undefined
 * when a live process holds the lock (a lock whose process is gone, a build killed before its
 * end, is taken over, as is one older than BUILD_LOCK_STALE_MS).
 */
export function takeBuildLock(dir: string): (() => void) | undefined {
  const lock = join(dir, "build.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      let holder: number;
      try {
        holder = Number(readFileSync(lock, "utf8").trim());
      } catch {
        continue; // released meanwhile
      }
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      // A build gives up after 10 minutes; an older lock's pid may be another process's by now.
      if (age < BUILD_LOCK_STALE_MS && Number.isInteger(holder) && holder > 0 && processAlive(holder)) return undefined;
      rmSync(lock, { force: true });
    }
  }
  return undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
