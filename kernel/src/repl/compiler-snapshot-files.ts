/**
 * A compiler snapshot's files and the messages that build one: shared by the
 * kernel (compiler-snapshot.ts), the builder (compiler-snapshot-build.ts) and
 * the code inside the snapshot (compiler-snapshot-entry.ts).
 *
 * In the cache folder, per chain, working directory, Node and V8 flags (the
 * key): `<key>.blob`, the V8 startup snapshot (about 70 MB), and
 * `<key>.json`, its SnapshotManifest.
 */
import { statSync } from "node:fs";
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
