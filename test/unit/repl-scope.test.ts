import { test } from "node:test";
import assert from "node:assert/strict";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { CellScope } from "../../kernel/src/repl/cell-scope";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";
import { InterruptedError } from "../../kernel/src/repl/errors";

const compiler = new CellCompiler();
test.after(() => compiler.close());

/** A notebook of cells: compile against one chain, run in one scope, advance on success. */
function notebook() {
  const chain = DeclarationChain.notebook();
  const scope = new CellScope();
  let count = 0;
  return {
    chain,
    scope,
    async run(code: string, signal?: AbortSignal) {
      const compiled = compiler.compile(code, chain);
      const result = await scope.run(compiled, { cellName: `cell ${++count}`, signal });
      chain.advance(compiled);
      return result;
    },
  };
}

test("declarations persist across cells and the last expression is returned, not printed", async () => {
  const nb = notebook();
  assert.deepEqual(await nb.run("let count = 2;\nfunction twice(x: number) { return 2 * x; }"), { value: undefined, hasValue: false });
  assert.deepEqual(await nb.run("count = twice(count);\ncount + 1"), { value: 5, hasValue: true });
  assert.equal(nb.scope.getVariable("count"), 4);
  assert.deepEqual(await nb.run("undefined"), { value: undefined, hasValue: false });
  assert.deepEqual(await nb.run("null"), { value: null, hasValue: true });
});

test("const, let and imports can be declared again by a later cell", async () => {
  const nb = notebook();
  await nb.run("const size = 1;\nimport * as path from 'node:path';");
  assert.deepEqual(await nb.run("const size = 'big';\nsize"), { value: "big", hasValue: true });
  const { value } = await nb.run("import * as path from 'node:path';\npath.basename('/a/b.txt')");
  assert.equal(value, "b.txt");
});

test("a shorthand property names an earlier cell's variable, in literals, functions and destructuring", async () => {
  const nb = notebook();
  await nb.run("const nLayer = 3;\nlet nHead = 2;");
  assert.deepEqual((await nb.run("({ nLayer, nHead })")).value, { nLayer: 3, nHead: 2 });
  assert.deepEqual((await nb.run("function config() { return { nLayer }; }\nconfig()")).value, { nLayer: 3 });
  // A destructuring assignment writes the earlier cell's variable, defaults included.
  await nb.run("({ nHead = 8 } = {} as { nHead?: number });");
  assert.equal(nb.scope.getVariable("nHead"), 8);
  await nb.run("({ nHead } = { nHead: 4 });");
  assert.equal(nb.scope.getVariable("nHead"), 4);
});

test("top-level await resolves before the value is returned", async () => {
  const nb = notebook();
  const { value } = await nb.run("const late = await new Promise<number>((resolve) => setTimeout(() => resolve(42), 20));\nlate * 2");
  assert.equal(value, 84);
  assert.equal(nb.scope.getVariable("late"), 42);
});

test("`await (x)` opening a statement awaits, in a cell with no import (parsed as a call of `await` there)", async () => {
  const nb = notebook();
  assert.deepEqual(await nb.run("await (new Promise<number>((resolve) => setTimeout(() => resolve(7), 5)))"), { value: 7, hasValue: true });
  assert.deepEqual(await nb.run("const got = await (Promise.resolve(3));\ngot + 1"), { value: 4, hasValue: true });
  // A function of the cell named await keeps its own meaning inside a function: nothing to await at the top.
  assert.equal(compiler.compile("function f() { return [1].map((x) => x); }\nf()", nb.chain).hasTopLevelAwait, false);
});

test("a runtime error keeps its class and message and its stack points at the cell's line 3", async () => {
  const nb = notebook();
  await assert.rejects(nb.run("const a: number = 1;\n\nthrow new RangeError(`too far: ${a}`);"), (error: unknown) => {
    assert.ok(error instanceof RangeError);
    assert.equal(error.message, "too far: 1");
    const frames = String(error.stack).split("\n").filter((line) => line.includes(" at "));
    assert.match(frames[0]!, /<cell 1>:3:7/);
    assert.equal(frames.length, 1, `kernel frames are dropped: ${error.stack}`);
    return true;
  });
});

test("frames of a function defined in an earlier cell map to that cell", async () => {
  const nb = notebook();
  await nb.run("// helpers\n\nfunction check(x: number) {\n\n  if (x < 0) throw new Error('negative');\n  return x;\n}");
  await assert.rejects(nb.run("const v = 1;\ncheck(-v)"), (error: Error) => {
    assert.match(String(error.stack), /at (Proxy\.)?check \(<cell 1>:5:20\)/);
    assert.match(String(error.stack), /at <cell 2>:2:1/);
    return true;
  });
});

test("aborting the signal rejects a pending await with InterruptedError", async () => {
  const nb = notebook();
  const controller = new AbortController();
  const pending = nb.run("await new Promise(() => {});\n'never'", controller.signal);
  setTimeout(() => controller.abort(), 30);
  await assert.rejects(pending, InterruptedError);
  const already = AbortSignal.abort();
  await assert.rejects(nb.run("1", already), /Interrupted before the cell started/);
});

test("cells resolve packages the cwd lacks from the kernel's own node_modules", async () => {
  const nb = notebook();
  const { value } = await nb.run("import * as tf from '@tensorflow/tfjs';\ntypeof tf.tensor");
  assert.equal(value, "function");
  await assert.rejects(nb.run("require('no-such-package-anywhere')"), /Cannot find module 'no-such-package-anywhere'/);
});

test("a chain's globals must be provided by the scope, and then reach the cell", async () => {
  const chain = DeclarationChain.ranks();
  const scope = new CellScope();
  const compiled = compiler.compile("dist.rank * 10 + dist.size", chain);
  await assert.rejects(scope.run(compiled, { cellName: "rank cell" }), /provides no global 'dist'/);
  scope.setGlobal("dist", { rank: 3, size: 4 });
  scope.setGlobal("tf", {});
  assert.deepEqual(await scope.run(compiled, { cellName: "rank cell" }), { value: 34, hasValue: true });
});

test("getVariable names a variable no cell declared", () => {
  const scope = new CellScope();
  assert.throws(() => scope.getVariable("ghost"), /ghost is not defined in this scope/);
  scope.setVariable("ghost", 1);
  assert.equal(scope.hasVariable("ghost"), true);
});

test("SIGINT stops a synchronous infinite loop on the main thread with InterruptedError", async () => {
  const { spawn } = await import("node:child_process");
  const path = await import("node:path");
  const root = path.resolve(__dirname, "../..");
  const child = spawn(
    process.execPath,
    [
      "--import",
      path.join(root, "node_modules/tsx/dist/loader.mjs"),
      "-e",
      [
        `const { writeSync } = require("node:fs");`,
        `const { CellCompiler } = require(${JSON.stringify(path.join(root, "kernel/src/repl/cell-compiler.ts"))});`,
        `const { CellScope } = require(${JSON.stringify(path.join(root, "kernel/src/repl/cell-scope.ts"))});`,
        `const { DeclarationChain } = require(${JSON.stringify(path.join(root, "kernel/src/repl/declaration-chain.ts"))});`,
        // A kernel keeps a SIGINT handler, so a signal between cells does not end the process.
        `process.on("SIGINT", () => {});`,
        `const compiler = new CellCompiler();`,
        `const cell = compiler.compile("let spins = 0;\\nwhile (true) { spins++; }", DeclarationChain.notebook());`,
        `compiler.close();`,
        `writeSync(1, "ready\\n");`,
        `new CellScope().run(cell, { cellName: "cell 1", breakOnSigint: true })`,
        `  .then(() => writeSync(1, "finished\\n"), (e) => writeSync(1, e.name + ": " + e.message + "\\n"));`,
      ].join("\n"),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (output === "ready\n") setTimeout(() => child.kill("SIGINT"), 300);
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  await exited;
  clearTimeout(killer);
  assert.equal(output, "ready\nInterruptedError: Interrupted (SIGINT) while the cell ran\n");
});
