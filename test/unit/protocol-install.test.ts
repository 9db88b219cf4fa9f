import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installKernelspec, kernelspec, userDataDir } from "../../kernel/src/install";

test("kernel.json starts this node on the built CLI with the connection file", () => {
  const spec = kernelspec("/opt/distlab/dist/cli.js", "/usr/bin/node");
  assert.deepEqual(spec.argv, ["/usr/bin/node", "/opt/distlab/dist/cli.js", "kernel", "--connection-file", "{connection_file}"]);
  assert.equal(spec.language, "typescript");
  assert.equal(spec.interrupt_mode, "signal");
});

test("--prefix installs under PREFIX/share/jupyter/kernels/distlab", () => {
  const prefix = mkdtempSync(join(tmpdir(), "distlab-install-"));
  try {
    const dir = installKernelspec({ kind: "prefix", prefix });
    assert.equal(dir, join(prefix, "share", "jupyter", "kernels", "distlab"));
    const written = JSON.parse(readFileSync(join(dir, "kernel.json"), "utf8")) as { argv: string[] };
    assert.match(written.argv[1], /kernel\/dist\/cli\.js$/);
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
});

test("the user data directory follows JUPYTER_DATA_DIR, then XDG_DATA_HOME", () => {
  assert.equal(userDataDir({ JUPYTER_DATA_DIR: "/data/jupyter" }), "/data/jupyter");
  if (process.platform === "linux") assert.equal(userDataDir({ XDG_DATA_HOME: "/xdg" }), "/xdg/jupyter");
});
