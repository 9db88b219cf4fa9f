// Compiler snapshots (repl/compiler-snapshot.ts): a chain's created program written by a real
// `node --build-snapshot`, a real compiler process started from the blob, and the ways a blob
// stops being used. The tests run in a folder of their own (a blob's paths start at the working
// directory) with a cache folder of their own.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { CompilerThreads } from "../../kernel/src/repl/compiler-threads";
import { BUILD_ERRORS_LOG, buildSnapshot, SNAPSHOT_DIR_ENV, usableSnapshot } from "../../kernel/src/repl/compiler-snapshot";
import { BUILD_LOCK_STALE_MS, takeBuildLock } from "../../kernel/src/repl/compiler-snapshot-files";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";
import { CompileError } from "../../kernel/src/repl/errors";

const startDir = process.cwd();
const folder = mkdtempSync(join(tmpdir(), "distlab-snapshot-"));
const notebookDir = join(folder, "notebooks");
const cacheDir = join(folder, "cache");

before(() => {
  mkdirSync(notebookDir);
  process.chdir(notebookDir);
  process.env[SNAPSHOT_DIR_ENV] = cacheDir;
});
after(() => {
  process.chdir(startDir);
  delete process.env[SNAPSHOT_DIR_ENV];
  rmSync(folder, { recursive: true, force: true });
});

const ranks = (): DeclarationChain => DeclarationChain.ranks();
const plain = (chain: DeclarationChain) => ({ name: chain.name, prelude: chain.prelude, globalNames: chain.globalNames });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

function build(chain: DeclarationChain): Promise<number | null> {
  // A build does not keep its kernel alive; here the test waits for it.
  return new Promise((resolve) => buildSnapshot(plain(chain), resolve).ref());
}

/** This process's child processes started from a snapshot blob, from /proc: [pid, command line]. */
function snapshotChildren(): Array<[number, string]> {
  const found: Array<[number, string]> = [];
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      const command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
      if (ppid === process.pid && command.includes("--snapshot-blob")) found.push([Number(entry), command]);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const TYPED_CELL = "const shape: number[] = tf.zeros([2, 3]).shape;\nshape.length";
const WRONG_CELL = 'const n: number = "two";';

test("one build at a time: a build asked for while a live process holds the cache's lock is dropped", async () => {
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(join(cacheDir, "build.lock"), String(process.pid));
  try {
    assert.equal(await build(ranks()), 0, "the builder's exit code");
    assert.deepEqual(usableSnapshot(plain(ranks())), { missing: "not built yet" });
    assert.deepEqual(readdirSync(cacheDir).filter((name) => name !== BUILD_ERRORS_LOG), ["build.lock"], "nothing written beside the lock");
    // The same lock past BUILD_LOCK_STALE_MS (its pid may be another process's by now) is taken over.
    const stale = (Date.now() - BUILD_LOCK_STALE_MS - 1000) / 1000;
    utimesSync(join(cacheDir, "build.lock"), stale, stale);
    const release = takeBuildLock(cacheDir);
    assert.ok(release, "a stale lock is taken over");
    assert.equal(readFileSync(join(cacheDir, "build.lock"), "utf8"), String(process.pid));
    release();
  } finally {
    rmSync(join(cacheDir, "build.lock"), { force: true });
  }
});

test("a built snapshot starts the chain's compiler in a process of its own, which answers as the compiler on this thread does", async () => {
  // A lock left by a build whose process is gone does not stop this one.
  writeFileSync(join(cacheDir, "build.lock"), String(spawnSync("true").pid));
  assert.equal(await build(ranks()), 0, "the builder's exit code");
  const usable = usableSnapshot(plain(ranks()));
  assert.ok("blob" in usable, JSON.stringify(usable));

  const threads = new CompilerThreads({ warmChains: [ranks()], snapshots: true });
  try {
    await until(() => threads.warmUp().created.includes("ranks"), "the ranks chain's program there");
    assert.deepEqual(threads.snapshotState(), { running: ["ranks"], waiting: [] });
    const processes = snapshotChildren();
    assert.equal(processes.length, 1, `one compiler process from the blob: ${JSON.stringify(processes)}`);
    assert.ok(processes[0]![1].includes(usable.blob), processes[0]![1]);

    const here = new CellCompiler();
    const fromBlob = await threads.compile(TYPED_CELL, ranks());
    assert.deepEqual(fromBlob, here.compile(TYPED_CELL, ranks()));
    here.close();
    await assert.rejects(threads.compile(WRONG_CELL, ranks()), (error: unknown) => {
      assert.ok(error instanceof CompileError, String(error));
      assert.deepEqual(error.diagnostics.map((d) => [d.line, d.column]), [[1, 7]]);
      assert.match(error.message, /Type 'string' is not assignable to type 'number'/);
      return true;
    });
    const completion = (await threads.complete("tf.zer", 6, ranks())) as { candidates: string[] };
    assert.ok(completion.candidates.includes("zeros"), JSON.stringify(completion.candidates.slice(0, 20)));
  } finally {
    threads.close();
  }
  await until(() => snapshotChildren().length === 0, "the compiler process gone after close()", 10_000);
});

test("a folder whose packages changed since the build does not use the snapshot; the kernel builds a new one once quiet", async () => {
  const built = usableSnapshot(plain(ranks()));
  assert.ok("blob" in built, "the first test's snapshot");
  // Packages installed in the notebook's folder: the program would resolve some modules there now.
  mkdirSync(join(notebookDir, "node_modules", "left-pad"), { recursive: true });
  writeFileSync(join(notebookDir, "node_modules", "left-pad", "index.d.ts"), "export declare function leftPad(s: string, n: number): string;\n");
  const stale = usableSnapshot(plain(ranks()));
  assert.deepEqual(stale, { missing: `${join(notebookDir, "node_modules")} changed since it was built` });

  const threads = new CompilerThreads({ warmChains: [ranks()], snapshots: true });
  try {
    await until(() => threads.warmUp().created.includes("ranks"), "the ranks chain's program there");
    assert.deepEqual(snapshotChildren(), [], "the program was created on a thread");
    assert.match((await threads.compile('import { leftPad } from "left-pad";\nleftPad("a", 3)', ranks())).js, /leftPad/);
    await until(() => threads.snapshotState().building === "ranks", "a new build once quiet", 10_000);
    // The build does not keep the process alive: a pending timer does, while the test waits.
    const alive = setInterval(() => {}, 1000);
    await until(() => threads.snapshotState().building === undefined, "the build's end").finally(() => clearInterval(alive));
  } finally {
    threads.close();
  }
  const rebuilt = usableSnapshot(plain(ranks()));
  assert.ok("blob" in rebuilt, JSON.stringify(rebuilt));
});

test("a blob this Node cannot load is discarded, and the waiting request is answered by a thread", async () => {
  const usable = usableSnapshot(plain(ranks()));
  assert.ok("blob" in usable, "the second test's snapshot");
  writeFileSync(usable.blob, "not a V8 snapshot");
  const threads = new CompilerThreads({ warmChains: [], snapshots: true });
  try {
    const compiled = await threads.compile(TYPED_CELL, ranks());
    assert.match(compiled.js, /tf\.zeros/);
    assert.deepEqual(threads.snapshotState().running, []);
  } finally {
    threads.close();
  }
  assert.deepEqual(usableSnapshot(plain(ranks())), { missing: "not built yet" });
  assert.deepEqual(readdirSync(cacheDir).filter((name) => !name.includes(".building-") && name !== BUILD_ERRORS_LOG), [], "the blob and its manifest removed");
});

test("a background build whose folder is deleted ends with exit code 1 and says why in the cache's build-errors.log", async () => {
  const doomed = mkdtempSync(join(folder, "doomed-"));
  process.chdir(doomed);
  let ended: Promise<number | null>;
  try {
    ended = build(ranks());
  } finally {
    process.chdir(notebookDir);
  }
  rmSync(doomed, { recursive: true });
  assert.equal(await ended, 1);
  assert.match(readFileSync(join(cacheDir, BUILD_ERRORS_LOG), "utf8"), /ENOENT|no such file or directory/);
});
