// "distlab/techniques", "distlab/models" and "distlab/data" inside cells:
// type-checked against the kernel's own files (so their tensors are the
// cell's tf tensors) and loaded at run time, from a folder with no node_modules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const root = path.resolve(__dirname, "../..");

const RANK_CELL = [
  'import { DataParallel, countBytes, type Collectives } from "distlab/techniques";',
  'import { createMlp } from "distlab/models";',
  'import { teacherClassification, datasetBatch, shardIndices } from "distlab/data";',
  "const model = createMlp({ sizes: [4, 3] });",
  "const summed = tf.add(model.predict(tf.zeros([2, 4])), 1); // library tensors are the cell's tf tensors",
  "const comm: Collectives = countBytes(dist);",
  "const dp = new DataParallel(model, comm, { lr: 0.1 });",
  "summed.shape",
].join("\n");

const NOTEBOOK_CELL = [
  'import * as tf from "@tensorflow/tfjs";',
  'import { DataParallel, validateTopKOptions } from "distlab/techniques";',
  'import { createMlp } from "distlab/models";',
  'import { teacherClassification, datasetBatch } from "distlab/data";',
  "const data = teacherClassification({ n: 8, inputs: 4, outputs: 3 });",
  "const model = createMlp({ sizes: [4, 3] });",
  "const dp = new DataParallel(model, { rank: 0, size: 1, allReduce: async (x) => x, allGather: async (x) => x });",
  "const { loss } = await dp.step(datasetBatch(data, [0, 1, 2, 3]));",
  "let message = '';",
  "try { validateTopKOptions({ ratio: 0 }); } catch (e) { message = (e as Error).message; }",
  "[tf.add(model.predict(tf.ones([1, 4])), 0).shape, typeof loss, message]",
].join("\n");

test("distlab/{techniques,models,data} type-check and run in cells from a folder without node_modules", () => {
  const folder = mkdtempSync(path.join(tmpdir(), "distlab-techniques-"));
  try {
    const script = path.join(folder, "check.ts");
    writeFileSync(
      script,
      [
        `import { CellCompiler } from ${JSON.stringify(path.join(root, "kernel/src/repl/cell-compiler"))};`,
        `import { CellScope } from ${JSON.stringify(path.join(root, "kernel/src/repl/cell-scope"))};`,
        `import { DeclarationChain } from ${JSON.stringify(path.join(root, "kernel/src/repl/declaration-chain"))};`,
        "const compiler = new CellCompiler();",
        "(async () => {",
        `  const rank = compiler.compile(${JSON.stringify(RANK_CELL)}, DeclarationChain.ranks());`,
        "  let badOption = '';",
        `  try { compiler.compile(${JSON.stringify('import { DataParallel } from "distlab/techniques";\nimport { createMlp } from "distlab/models";\nnew DataParallel(createMlp(), dist, { lr: "fast" });')}, DeclarationChain.ranks()); } catch (e) { badOption = String(e && (e as Error).message) + JSON.stringify((e as { diagnostics?: unknown }).diagnostics); }`,
        `  const cell = compiler.compile(${JSON.stringify(NOTEBOOK_CELL)}, DeclarationChain.notebook());`,
        "  const { value } = await new CellScope().run(cell, { cellName: 'cell 1' });",
        "  compiler.close();",
        "  process.stdout.write(JSON.stringify({ declarations: rank.declarations, badOption, value }));",
        "})().catch((e) => { console.error(e); process.exit(1); });",
      ].join("\n"),
    );
    const loader = path.join(root, "node_modules/tsx/dist/loader.mjs");
    const output = execFileSync(process.execPath, ["--import", loader, script], { cwd: folder, encoding: "utf8", timeout: 120_000 });
    const result = JSON.parse(output.slice(output.indexOf("{"))) as { declarations: string; badOption: string; value: unknown };
    assert.match(result.declarations, /declare const dp: DataParallel</, "the rank cell compiled, typed from the library");
    assert.match(result.badOption, /3:39 - Type .string. is not assignable to type .number./, "a wrongly typed option (lr) is a compile error at its column");
    assert.deepEqual(result.value, [[1, 3], "number", "topK.ratio must be in (0, 1], got 0"]);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
