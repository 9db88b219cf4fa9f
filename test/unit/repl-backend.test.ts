import { test } from "node:test";
import assert from "node:assert/strict";
import { TypeScriptRepl } from "../../kernel/src/repl/typescript-repl";
import { RecordingIO } from "./repl-recording-io";

const repl = new TypeScriptRepl();
test.after(() => repl.shutdown(false));

async function run(code: string, io = new RecordingIO()) {
  return { outcome: await repl.execute(code, io), io };
}

test("the last expression becomes an execute_result and undefined gives none", async () => {
  assert.deepEqual((await run("1 + 2")).outcome, { status: "ok", result: { data: { "text/plain": "3" }, metadata: {} } });
  assert.deepEqual((await run("let nothing = undefined;\nnothing")).outcome, { status: "ok" });
  const nested = (await run("({ a: [1, 2], b: 'x' })")).outcome;
  assert.equal(nested.status === "ok" && nested.result?.data["text/plain"], "{ a: [ 1, 2 ], b: 'x' }");
});

test("console and process.stdout reach the running execution's streams", async () => {
  const { io } = await run("console.log('out', 1);\nconsole.error('bad');\nprocess.stdout.write('raw\\n');");
  assert.equal(io.text("stdout"), "out 1\nraw\n");
  assert.equal(io.text("stderr"), "bad\n");
});

test("tslab's display API works unchanged and reaches the execution", async () => {
  const code = [
    "import * as tslab from 'tslab';",
    "tslab.display.html('<b>hi</b>');",
    "tslab.display.markdown('# title');",
    "tslab.display.png(new Uint8Array([137, 80, 78, 71]));",
    "tslab.display.raw('application/json', '{\"k\": 1}');",
    "import { display } from 'distlab';",
    "display.raw('application/vnd.example+json', { deep: [1] });",
    "const shown = tslab.newDisplay();",
    "shown.text('first');",
    "shown.text('second');",
  ].join("\n");
  const { outcome, io } = await run(code);
  assert.deepEqual(outcome, { status: "ok" });
  const displays = io.events.flatMap((e) => (e.kind === "display" ? [e] : []));
  assert.deepEqual(displays[0]!.payload.data, { "text/html": "<b>hi</b>" });
  assert.deepEqual(displays[1]!.payload.data, { "text/markdown": "# title" });
  assert.deepEqual(displays[2]!.payload.data, { "image/png": Buffer.from([137, 80, 78, 71]).toString("base64") });
  assert.deepEqual(displays[3]!.payload.data, { "application/json": { k: 1 } });
  assert.deepEqual(displays[4]!.payload.data, { "application/vnd.example+json": { deep: [1] } });
  const [first, second] = displays.slice(5);
  assert.equal(first!.update, false);
  assert.equal(second!.update, true);
  assert.ok(first!.payload.transient?.display_id);
  assert.equal(first!.payload.transient?.display_id, second!.payload.transient?.display_id);
});

test("a bad JSON string for a +json type is an error naming the type", async () => {
  const { outcome } = await run("import { display } from 'distlab';\ndisplay.raw('application/json', '{oops');");
  assert.equal(outcome.status, "error");
  assert.match(outcome.status === "error" ? outcome.evalue : "", /application\/json string is not valid JSON/);
});

test("distlab's clearOutput and the async prompt reach the execution", async () => {
  const io = new RecordingIO(["Ada"]);
  const { outcome } = await run("import { clearOutput } from 'distlab';\nclearOutput(true);\nconst who = await prompt('name?');\n`hi ${who}`", io);
  assert.deepEqual(outcome, { status: "ok", result: { data: { "text/plain": "'hi Ada'" }, metadata: {} } });
  assert.deepEqual(io.events, [{ kind: "clear", wait: true }, { kind: "input", prompt: "name?" }]);
});

test("a value's own mime bundle and a tensor's text are used", async () => {
  const own = (await run("({ [Symbol.for('distlab.mimeBundle')]() { return { 'text/html': '<i>me</i>' }; } })")).outcome;
  assert.equal(own.status === "ok" && own.result?.data["text/html"], "<i>me</i>");
  const tensor = (await run("import * as tf from '@tensorflow/tfjs';\ntf.tensor([1, 2, 3])")).outcome;
  assert.equal(tensor.status === "ok" && tensor.result?.data["text/plain"], "Tensor\n    [1, 2, 3]");
});

test("errors become ename/evalue/traceback with the cell's line", async () => {
  const thrown = (await run("const limit = 2;\n\nthrow new RangeError('over ' + limit);")).outcome;
  assert.equal(thrown.status, "error");
  if (thrown.status !== "error") return;
  assert.equal(thrown.ename, "RangeError");
  assert.equal(thrown.evalue, "over 2");
  assert.match(thrown.traceback.join("\n"), /<cell \d+>:3:7/);
  const typed = (await run("const n: number = 'one';")).outcome;
  assert.deepEqual(typed.status === "error" && [typed.ename, typed.evalue], ["CompileError", "1:7 - Type 'string' is not assignable to type 'number'."]);
  const value = (await run("throw 'plain string';")).outcome;
  assert.equal(value.status === "error" && value.evalue, "Uncaught 'plain string'");
});

test("a failed cell leaves the chain as it was", async () => {
  await run("const stable = 1;");
  await run("const stable = 'x';\nthrow new Error('after redeclare');");
  const { outcome } = await run("stable + 1");
  assert.deepEqual(outcome.status === "ok" && outcome.result?.data, { "text/plain": "'x1'" });
});

test("interrupt() and the io's signal stop a pending await", async () => {
  const io = new RecordingIO();
  const pending = run("await new Promise(() => {});", io);
  setTimeout(() => io.controller.abort(), 30);
  const { outcome } = await pending;
  assert.equal(outcome.status === "error" && outcome.ename, "InterruptedError");
  const second = run("await new Promise(() => {});");
  setTimeout(() => repl.interrupt(), 30);
  assert.equal(((await second).outcome as { ename?: string }).ename, "InterruptedError");
});

test("completion counts code points, before and after non-ASCII text", async () => {
  await run("const größe = 1; const 𝑥value = 2;");
  const code = "'😀'; gr";
  const result = await repl.complete(code, [...code].length);
  assert.ok(result.matches.includes("größe"), result.matches.slice(0, 5).join());
  // code points: ' 😀 ' ; space g r -> "gr" spans 5..7
  assert.deepEqual([result.cursorStart, result.cursorEnd], [5, 7]);
  const astral = "𝑥va";
  const astralResult = await repl.complete(astral, [...astral].length);
  assert.ok(astralResult.matches.includes("𝑥value"));
  assert.deepEqual([astralResult.cursorStart, astralResult.cursorEnd], [0, 3]);
});

test("inspection gives the type and docs as text and markdown", async () => {
  await run("/** Scales by two. */\nfunction doubled(x: number) { return 2 * x; }");
  const code = "'ü'; doubled";
  const found = await repl.inspect(code, [...code].length, 0);
  assert.equal(found.found, true);
  assert.match(String(found.data["text/plain"]), /function doubled\(x: number\): number/);
  assert.match(String(found.data["text/plain"]), /Scales by two\./);
  assert.match(String(found.data["text/markdown"]), /```typescript/);
  assert.deepEqual(await repl.inspect("   ", 1, 1), { found: false, data: {} });
});

test("isComplete tells complete, incomplete (with indent) and invalid apart", async () => {
  assert.deepEqual(await repl.isComplete("const a = 1;"), { status: "complete" });
  assert.deepEqual(await repl.isComplete("function f() {"), { status: "incomplete", indent: "  " });
  assert.equal((await repl.isComplete("let x = ")).status, "incomplete");
  assert.deepEqual(await repl.isComplete("}"), { status: "invalid" });
  assert.deepEqual(await repl.isComplete("let = = 2;"), { status: "invalid" });
});

test("variables can be set, read and then used by cells with their declared type", async () => {
  await repl.setVariable("pulled", [1, 2, 3], "number[]");
  assert.equal(repl.hasVariable("pulled"), true);
  const { outcome } = await run("pulled.reduce((a, b) => a + b, 0)");
  assert.deepEqual(outcome.status === "ok" && outcome.result?.data, { "text/plain": "6" });
  const wrong = (await run("pulled.toUpperCase()")).outcome;
  assert.match(wrong.status === "error" ? wrong.evalue : "", /Property 'toUpperCase' does not exist/);
  await run("const made = { n: 1 };");
  assert.deepEqual(repl.getVariable("made"), { n: 1 });
  assert.throws(() => repl.getVariable("never"), /never is not defined/);
});
