// A plain notebook cell that loads TensorFlow.js's wasm backend itself gets
// distlab's wasm overrides through the cell's require (compute/plain-cells.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createCellRequire } from "../../kernel/src/repl/cell-require";

const OURS = Symbol.for("distlab.compute.override");

test("requiring @tensorflow/tfjs-backend-wasm from a cell installs the overrides; a cell's matMul uses them", async () => {
  const cellRequire = createCellRequire(process.cwd(), {});
  const tf = cellRequire("@tensorflow/tfjs") as typeof import("@tensorflow/tfjs");
  assert.equal(tf.getKernel("BatchMatMul", "wasm"), undefined, "the wasm backend is not loaded yet in this process");
  cellRequire("@tensorflow/tfjs-backend-wasm");
  const config = tf.getKernel("BatchMatMul", "wasm") as unknown as Record<symbol, unknown> | undefined;
  assert.equal(config?.[OURS], true, "BatchMatMul for wasm is distlab's after the cell's require");
  assert.ok(await tf.setBackend("wasm"));
  // A transposed product through the override: [[1, 2], [3, 4]]^T . [[1], [1]] = [[4], [6]]
  const product = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[1], [1]]), true, false);
  assert.deepEqual(product.arraySync(), [[4], [6]]);
});
