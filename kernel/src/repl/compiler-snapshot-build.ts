/**
 * Builds one chain's compiler snapshot (compiler-snapshot.ts says what it
 * is for). Run as its own process by the kernel, at low priority:
 *
 *   node compiler-snapshot-build.js '<SnapshotBuildRequest as JSON>'
 *
 * 1. esbuild bundles compiler-snapshot-entry into one file: a snapshot's
 *    entry may load only Node's built-in modules (Node's CommonJS loader
 *    does not survive the snapshot), so TypeScript, tslab's converter and
 *    the kernel's compiler go in as one script. Each module keeps its own
 *    `__dirname`, `__filename` and `require.resolve` answers, frozen at
 *    bundle time (TypeScript finds its lib files from `__filename`; the
 *    type resolution finds the kernel's node_modules by `require.resolve`).
 * 2. `node --build-snapshot` runs the bundle with the kernel's V8 flags (a
 *    blob loads only under the flags it was built with) and writes the blob.
 * 3. The manifest lists every input with its size and modification time:
 *    the bundle's sources and the files and folders the program watched.
 *    It is written last, under its final name, so a blob without one is
 *    never used.
 * 4. The oldest snapshots beyond SNAPSHOTS_KEPT are deleted (each is about
 *    70 MB).
 *
 * One build at a time on a machine (takeBuildLock): a build asked for while
 * another runs is dropped, and the next kernel in that folder asks again.
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import * as esbuild from "esbuild";
import { BUILD_ERRORS_LOG } from "./compiler-snapshot";
import { inputStamp, SNAPSHOT_BUILD_ENV, takeBuildLock, SNAPSHOT_MANIFEST_VERSION, type SnapshotBuildInput, type SnapshotBuildRequest, type SnapshotManifest, type WatchedPaths } from "./compiler-snapshot-files";

/** How many chains' snapshots the cache keeps (newest first). */
const SNAPSHOTS_KEPT = 6;

/**
 * The longest a build may take, milliseconds: it is 5-7 s of CPU, but runs at the lowest priority
 * and waits while the machine is busy. Past this the builder gives up (a build whose folder was
 * deleted meanwhile could otherwise wait forever, holding the machine's build lock).
 */
const BUILD_TIMEOUT_MS = 10 * 60_000;

/** build-errors.log past this size is started afresh, bytes. */
const BUILD_ERRORS_KEPT_BYTES = 256 * 1024;

/** A build's working file older than this was left by a build that was stopped, milliseconds. */
const ABANDONED_AFTER_MS = 10 * 60_000;

const ENTRY = join(__dirname, `compiler-snapshot-entry${extname(__filename)}`);

/** esbuild plugin: gives each bundled module its own `__dirname`, `__filename` and `require.resolve("literal")` answers. */
const freezeModulePaths: esbuild.Plugin = {
  name: "freeze-module-paths",
  setup(build) {
    build.onLoad({ filter: /\.(c?js|ts)$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      const requireHere = createRequire(args.path);
      const resolved = source.replace(/require\.resolve\((["'])([^"'\n]+)\1\)/g, (call, _quote, id: string) => {
        try {
          return JSON.stringify(requireHere.resolve(id));
        } catch {
          return call;
        }
      });
      const paths = `var __filename = ${JSON.stringify(args.path)}, __dirname = ${JSON.stringify(dirname(args.path))};\n`;
      return { contents: paths + resolved, loader: args.path.endsWith(".ts") ? "ts" : "js" };
    });
  },
};

async function build(request: SnapshotBuildRequest): Promise<void> {
  mkdirSync(request.dir, { recursive: true });
  const release = takeBuildLock(request.dir);
  if (!release) return; // another build runs; a later kernel builds this one
  try {
    await buildLocked(request);
  } finally {
    release();
  }
}

async function buildLocked(request: SnapshotBuildRequest): Promise<void> {
  const stem = join(request.dir, request.key);
  const work = `${stem}.building-${process.pid}`;
  const bundle = `${work}.js`;
  const blob = `${work}.blob`;
  const watchedOut = `${work}.watched.json`;
  try {
    const bundled = await esbuild.build({
      entryPoints: [ENTRY],
      bundle: true,
      platform: "node",
      format: "iife",
      target: `node${process.versions.node.split(".")[0]}`,
      outfile: bundle,
      metafile: true,
      logLevel: "error",
      plugins: [freezeModulePaths],
    });
    const input: SnapshotBuildInput = { chain: request.chain, watchedOut };
    const built = spawnSync(process.execPath, [...request.v8Flags, "--snapshot-blob", blob, "--build-snapshot", bundle], {
      cwd: request.cwd,
      timeout: BUILD_TIMEOUT_MS,
      env: { ...process.env, [SNAPSHOT_BUILD_ENV]: JSON.stringify(input) },
      stdio: ["ignore", "ignore", "pipe"],
      encoding: "utf8",
    });
    if (built.status !== 0) throw new Error(`node --build-snapshot ended with ${built.status ?? built.signal}: ${built.stderr.trim().slice(-2000)}`);
    const watched = JSON.parse(readFileSync(watchedOut, "utf8")) as WatchedPaths;
    const sources = Object.keys(bundled.metafile.inputs).map((path) => resolve(path));
    const inputs = [...new Set([...sources, ...watched.files, ...watched.directories, ...watched.read])].sort().map(inputStamp);
    const manifest: SnapshotManifest = { version: SNAPSHOT_MANIFEST_VERSION, key: request.key, cwd: request.cwd, chain: request.chain.name, inputs };
    renameSync(blob, `${stem}.blob`);
    writeFileSync(`${stem}.json.tmp`, JSON.stringify(manifest));
    renameSync(`${stem}.json.tmp`, `${stem}.json`);
  } finally {
    for (const path of [bundle, blob, watchedOut]) rmSync(path, { force: true });
  }
  prune(request.dir);
}

/** Deletes the oldest snapshots beyond SNAPSHOTS_KEPT, blob and manifest together, and what stopped builds left. */
function prune(dir: string): void {
  const now = Date.now();
  const errors = join(dir, BUILD_ERRORS_LOG);
  if ((statSync(errors, { throwIfNoEntry: false })?.size ?? 0) > BUILD_ERRORS_KEPT_BYTES) rmSync(errors, { force: true });
  for (const name of readdirSync(dir).filter((name) => name.includes(".building-"))) {
    const path = join(dir, name);
    if (now - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? now) > ABANDONED_AFTER_MS) rmSync(path, { force: true });
  }
  const blobs = readdirSync(dir)
    .filter((name) => name.endsWith(".blob") && !name.includes(".building-"))
    .map((name) => ({ stem: join(dir, name.slice(0, -".blob".length)), mtimeMs: statSync(join(dir, name)).mtimeMs }))
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { stem } of blobs.slice(SNAPSHOTS_KEPT)) {
    rmSync(`${stem}.json`, { force: true });
    rmSync(`${stem}.blob`, { force: true });
  }
}

// The event loop is free while esbuild works (it waits on esbuild's process), so this fires then too.
setTimeout(() => fail(`not done within ${BUILD_TIMEOUT_MS / 1000} s`), BUILD_TIMEOUT_MS + 5_000).unref();

build(JSON.parse(process.argv[2] ?? "null") as SnapshotBuildRequest).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));

function fail(why: string): void {
  process.stderr.write(`distlab: the compiler snapshot was not built: ${why}\n`);
  process.exit(1);
}
