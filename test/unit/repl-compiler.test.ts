import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DeclarationChain } from "../../kernel/src/repl/declaration-chain";
import { CompileError } from "../../kernel/src/repl/errors";

const compiler = new CellCompiler();

function compileErrorOf(compile: () => unknown): CompileError {
  try {
    compile();
  } catch (error) {
    assert.ok(error instanceof CompileError, `expected a CompileError, got ${String(error)}`);
    return error;
  }
  assert.fail("the cell compiled, but a CompileError was expected");
}

test("a declaration is visible to later cells once the chain advances", () => {
  const chain = DeclarationChain.notebook();
  const first = compiler.compile("const width: number = 3;\nfunction area(h: number) { return width * h; }", chain);
  assert.match(first.declarations, /declare const width: number/);
  assert.match(first.declarations, /declare function area\(h: number\): number/);
  assert.throws(() => compiler.compile("area(2)", chain), CompileError, "not advanced yet: area is unknown");
  chain.advance(first);
  const second = compiler.compile("area(2)", chain);
  assert.equal(second.lastExpressionVar !== undefined, true);
  assert.equal(second.hasTopLevelAwait, false);
});

test("type errors are reported in the cell's own line:col", () => {
  const chain = DeclarationChain.notebook();
  const code = "const ok = 1;\n\n  let bad: number = 'text';";
  const e = compileErrorOf(() => compiler.compile(code, chain));
  assert.equal(e.diagnostics.length, 1);
  assert.deepEqual([e.diagnostics[0]!.line, e.diagnostics[0]!.column], [3, 7]);
  assert.equal(e.message, "3:7 - Type 'string' is not assignable to type 'number'.");
});

test("an error after a shorthand property keeps its column", () => {
  const chain = DeclarationChain.notebook();
  const e = compileErrorOf(() => compiler.compile("const a = 1;\nconst o = { a }; let bad: number = 'text';", chain));
  assert.deepEqual([e.diagnostics[0]!.line, e.diagnostics[0]!.column], [2, 22]);
});

test("top-level await is detected and allowed", () => {
  const compiled = compiler.compile("const v = await Promise.resolve(2);\nv", DeclarationChain.notebook());
  assert.equal(compiled.hasTopLevelAwait, true);
});

test("each compiled JS line maps to the cell line it came from", () => {
  const code = "let a = 1;\n\n\nfunction f() {\n\n  return a;\n}\nf()";
  const compiled = compiler.compile(code, DeclarationChain.notebook());
  const jsLines = compiled.js.split("\n");
  const returnLine = jsLines.findIndex((line) => line.includes("return"));
  assert.equal(compiled.cellLines[returnLine], 6);
  assert.doesNotMatch(compiled.js, /@cell:/, "markers are stripped");
});

test("the ranks' chain knows dist and tf; the notebook's does not", () => {
  const ranks = DeclarationChain.ranks();
  const code = "const total = await dist.allReduce(tf.tensor([1, 2]), { op: 'sum' });\ntotal.shape";
  const compiled = compiler.compile(code, ranks);
  assert.deepEqual(compiled.globals, ["dist", "tf", "prompt"]);
  assert.match(compiled.declarations, /declare const total: .*Tensor/);
  assert.throws(() => compiler.compile("dist.rank", DeclarationChain.notebook()), /1:1 - Cannot find name 'dist'/);
  assert.throws(() => compiler.compile("dist.allReduce(1, { op: 'median' })", ranks), CompileError);
});

test("declareVariable makes a pushed name type-check, replacing its old declaration", () => {
  const chain = DeclarationChain.notebook();
  chain.advance(compiler.compile("const weights = 'w';", chain));
  compiler.declareVariable(chain, "weights", "Float32Array");
  compiler.compile("weights.length.toFixed(1)", chain);
  assert.throws(() => compiler.compile("weights.toUpperCase()", chain), /Property 'toUpperCase' does not exist/);
  assert.throws(() => compiler.declareVariable(chain, "not a name"), /'not a name' is not a JavaScript identifier/);
});

test("a small cell compiles in milliseconds after warm-up", () => {
  const chain = DeclarationChain.notebook();
  compiler.compile("1", chain);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    chain.advance(compiler.compile(`const n${i} = ${i} + 1;\nn${i}`, chain));
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  console.log(`compile of a small cell: median ${times[2]!.toFixed(1)} ms`);
  assert.ok(times[2]! < 1000, `median compile ${times[2]} ms`);
});

test("the ranks' chain type-checks from a folder without node_modules", () => {
  const folder = mkdtempSync(path.join(tmpdir(), "distlab-cwd-"));
  try {
    const script = path.join(folder, "check.ts");
    const root = path.resolve(__dirname, "../..");
    writeFileSync(
      script,
      [
        `import { CellCompiler } from ${JSON.stringify(path.join(root, "kernel/src/repl/cell-compiler"))};`,
        `import { DeclarationChain } from ${JSON.stringify(path.join(root, "kernel/src/repl/declaration-chain"))};`,
        `const compiler = new CellCompiler();`,
        `const compiled = compiler.compile("const s = await dist.allReduce(tf.tensor([1, 2]), { op: 'mean' });\\nimport * as tf2 from '@tensorflow/tfjs';\\nimport { display } from 'distlab';\\ns", DeclarationChain.ranks());`,
        `compiler.close();`,
        `process.stdout.write(JSON.stringify({ cwd: process.cwd(), declarations: compiled.declarations }));`,
      ].join("\n"),
    );
    const loader = path.join(root, "node_modules/tsx/dist/loader.mjs");
    const output = execFileSync(process.execPath, ["--import", loader, script], { cwd: folder, encoding: "utf8", timeout: 60_000 });
    const result = JSON.parse(output) as { cwd: string; declarations: string };
    assert.equal(result.cwd, folder);
    assert.match(result.declarations, /declare const s: .*Tensor/);
    assert.match(result.declarations, /import \* as tf2 from ['"]@tensorflow\/tfjs['"]/);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test.after(() => compiler.close());
