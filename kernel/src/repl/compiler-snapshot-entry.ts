/**
 * What runs inside a chain's compiler snapshot (compiler-snapshot.ts).
 *
 * Built by `node --build-snapshot` from an esbuild bundle of this file
 * (compiler-snapshot-build.ts): it creates the chain's TypeScript program,
 * as a compiler thread does on start, and V8 writes the whole heap — the
 * parsed and bound declaration files, the checker — to a blob. A process
 * started from that blob (`node --snapshot-blob`) has the program in about
 * a fifth of the time creating it takes, and then answers the kernel's
 * requests over the IPC channel with the same messages as a compiler thread
 * (compiler-messages.ts).
 *
 * A snapshot cannot hold file watchers (they are operating-system handles),
 * and the build process must be free of them to be written at all; so while
 * the program is created the watchers TypeScript asks for are only noted,
 * with the paths they watch, and started once the process runs from the
 * blob. The noted paths, with the files the program read, are the snapshot's
 * inputs: the builder records each one's size and modification time, and
 * the kernel uses the snapshot only while they are unchanged
 * (compiler-snapshot.ts).
 *
 * Build-time input, from the environment (SNAPSHOT_BUILD_ENV): the chain as
 * plain data and the file to write the watched paths to.
 */
import { writeFileSync } from "node:fs";
import * as v8 from "node:v8";
import * as ts from "@tslab/typescript-for-tslab";
import { CompilerService } from "./compiler-service";
import { PROGRAM_CREATED, type CompilerReply, type CompilerRequest } from "./compiler-messages";
import { SNAPSHOT_BUILD_ENV, type SnapshotBuildInput, type WatchedPaths } from "./compiler-snapshot-files";

/** A watcher handed to TypeScript before the real one exists; close() works before and after. */
interface LateWatcher extends ts.FileWatcher {
  real?: ts.FileWatcher;
  closed: boolean;
}

const input = JSON.parse(process.env[SNAPSHOT_BUILD_ENV] ?? "null") as SnapshotBuildInput | null;
if (!input || !v8.startupSnapshot.isBuildingSnapshot()) {
  throw new Error(`compiler-snapshot-entry runs only under node --build-snapshot, with ${SNAPSHOT_BUILD_ENV} set`);
}

const sys = ts.sys;
const watchFile = sys.watchFile!.bind(sys);
const watchDirectory = sys.watchDirectory!.bind(sys);
const startWatchers: Array<() => void> = [];
const watched: WatchedPaths = { files: [], directories: [], read: [] };

function noted(start: () => ts.FileWatcher): LateWatcher {
  const watcher: LateWatcher = {
    closed: false,
    close() {
      this.closed = true;
      this.real?.close();
    },
  };
  startWatchers.push(() => {
    if (!watcher.closed) watcher.real = start();
  });
  return watcher;
}

sys.watchFile = (path, callback, interval, options) => {
  watched.files.push(path);
  return noted(() => watchFile(path, callback, interval, options));
};
sys.watchDirectory = (path, callback, recursive, options) => {
  watched.directories.push(path);
  return noted(() => watchDirectory(path, callback, recursive, options));
};

// Wrapped before the type resolution wraps it in turn (type-resolution.ts): the paths seen here
// are the files read from disk, after its forwarding to the kernel's node_modules.
const readFile = sys.readFile.bind(sys);
let recording = true;
sys.readFile = (path, encoding) => {
  const text = readFile(path, encoding);
  if (recording && text !== undefined) watched.read.push(path);
  return text;
};

const service = new CompilerService(input.chain);
service.createProgram();
recording = false;
sys.watchFile = watchFile;
sys.watchDirectory = watchDirectory;
writeFileSync(input.watchedOut, JSON.stringify(watched));

v8.startupSnapshot.setDeserializeMainFunction(() => {
  for (const start of startWatchers) start();
  startWatchers.length = 0;
  // The kernel gone (its end of the channel closed) leaves nothing to compile for.
  process.on("disconnect", () => process.exit(0));
  // An interrupt in signal mode is SIGINT to the kernel's whole process group; it is for the
  // running cell, which the kernel handles. (A compiler thread never saw it.)
  process.on("SIGINT", () => {});
  process.on("message", (request: CompilerRequest) => process.send!(service.answer(request)));
  process.send!({ id: PROGRAM_CREATED, ok: true, value: null } satisfies CompilerReply);
});
