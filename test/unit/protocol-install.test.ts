import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installKernelspec, installLabextension, kernelspec, userDataDir } from "../../kernel/src/install";
import { RELAXED_SIMD_FLAG, v8StartFlags } from "../../kernel/src/v8-start-flags";

test("kernel.json starts this node on the built CLI with the connection file, V8 start flags first", () => {
  const spec = kernelspec("/opt/distlab/dist/cli.js", "/usr/bin/node", []);
  assert.deepEqual(spec.argv, ["/usr/bin/node", "/opt/distlab/dist/cli.js", "kernel", "--connection-file", "{connection_file}"]);
  const flagged = kernelspec("/opt/distlab/dist/cli.js", "/usr/bin/node", [RELAXED_SIMD_FLAG]);
  assert.deepEqual(flagged.argv, ["/usr/bin/node", RELAXED_SIMD_FLAG, "/opt/distlab/dist/cli.js", "kernel", "--connection-file", "{connection_file}"]);
  assert.equal(spec.language, "typescript");
  assert.equal(spec.interrupt_mode, "signal");
});

test("--prefix installs under PREFIX/share/jupyter/kernels/distlab", () => {
  const prefix = mkdtempSync(join(tmpdir(), "distlab-install-"));
  try {
    const dir = installKernelspec({ kind: "prefix", prefix });
    assert.equal(dir, join(prefix, "share", "jupyter", "kernels", "distlab"));
    const written = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8")) as { argv: string[] };
    // node, the V8 flags this node needs from the start (none from Node 22), the CLI, its arguments
    assert.deepEqual(written.argv.slice(1, -4), v8StartFlags());
    assert.match(written.argv.at(-4)!, /kernel\/dist\/cli\.js$/);
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
});

test("the user data directory follows JUPYTER_DATA_DIR, then XDG_DATA_HOME", () => {
  assert.equal(userDataDir({ JUPYTER_DATA_DIR: "/data/jupyter" }), "/data/jupyter");
  if (process.platform === "linux") assert.equal(userDataDir({ XDG_DATA_HOME: "/xdg" }), "/xdg/jupyter");
});

test("the bundled labextension goes to PREFIX/share/jupyter/labextensions/@distlab/timeline, unless pip manages the one there", () => {
  const work = mkdtempSync(join(tmpdir(), "distlab-labext-"));
  try {
    const source = join(work, "built");
    mkdirSync(join(source, "static"), { recursive: true });
    writeFileSync(join(source, "package.json"), JSON.stringify({ name: "@distlab/timeline", version: "9.9.9" }));
    writeFileSync(join(source, "static", "remoteEntry.js"), "// bundle");
    const prefix = join(work, "env");
    const target = installLabextension({ kind: "prefix", prefix }, source);
    assert.equal(target, join(prefix, "share", "jupyter", "labextensions", "@distlab", "timeline"));
    assert.equal(JSON.parse(readFileSync(join(target!, "package.json"), "utf8")).version, "9.9.9");
    assert.ok(existsSync(join(target!, "static", "remoteEntry.js")));

    // pip's copy carries install.json naming pip: it is left for pip to update and uninstall.
    writeFileSync(join(target!, "install.json"), JSON.stringify({ packageManager: "python", packageName: "distlab" }));
    writeFileSync(join(source, "package.json"), JSON.stringify({ name: "@distlab/timeline", version: "10.0.0" }));
    assert.equal(installLabextension({ kind: "prefix", prefix }, source), undefined);
    assert.equal(JSON.parse(readFileSync(join(target!, "package.json"), "utf8")).version, "9.9.9");
    assert.equal(installLabextension({ kind: "prefix", prefix }, undefined), undefined);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
