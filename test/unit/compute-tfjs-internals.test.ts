// The TF.js internals distlab's overrides rely on (kernel/src/compute/tfjs-internals.ts), checked
// against the installed packages: a TF.js upgrade that changes one fails here, naming the override,
// instead of the override silently computing something else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { TFJS_INTERNALS, TFJS_VERSION, checkTfjsInternals, fingerprint, functionSource, type InternalsContract } from "../../kernel/src/compute/tfjs-internals";

const root = path.resolve(__dirname, "../..");

for (const contract of TFJS_INTERNALS) {
  test(`TF.js internals of ${contract.override} are as it relies on`, () => {
    const problems = contract.check();
    assert.deepEqual(problems, [], `${contract.override} relies on ${contract.reliesOn}; the installed TF.js differs:\n  ${problems.join("\n  ")}`);
  });
}

test("kernel/package.json pins every @tensorflow package to the version the overrides were read from", () => {
  const pkg = JSON.parse(readFileSync(path.join(root, "kernel", "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
  const ranges = Object.entries({ ...pkg.dependencies, ...pkg.optionalDependencies }).filter(([name]) => name.startsWith("@tensorflow/"));
  assert.ok(ranges.length >= 3, "the kernel depends on @tensorflow packages");
  for (const [name, range] of ranges) assert.equal(range, TFJS_VERSION, `${name} is "${range}" in kernel/package.json; pin it to ${TFJS_VERSION} (tfjs-internals.ts)`);
});

test("a changed internal fails its check with the override and what changed", () => {
  const changed: InternalsContract = {
    override: "webgpu/example.ts",
    reliesOn: "Example.prototype.run",
    check: () => {
      const before = functionSource("Example.prototype.run = function (a) { return a + 1; };", "Example.prototype.run = function")!;
      const after = functionSource("Example.prototype.run = function (a) { /* don't */ return a + '}' + 2; };", "Example.prototype.run = function")!;
      return fingerprint(before) === fingerprint(after) ? [] : [`Example.prototype.run changed (fingerprint ${fingerprint(after)})`];
    },
  };
  const problems = checkTfjsInternals([changed]);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^webgpu\/example\.ts: Example\.prototype\.run changed \(fingerprint [0-9a-f]{16}\) \(it relies on Example\.prototype\.run\)$/);
  // White space alone is no change; a function's end is found past braces in strings and comments.
  assert.equal(fingerprint("function f() {\n  return 1;\n}"), fingerprint("function f() { return 1; }"));
  assert.equal(functionSource("x; function g() { const s = '}'; /* } */ return s; } y", "function g("), "function g() { const s = '}'; /* } */ return s; }");
});
