import { test } from "node:test";
import assert from "node:assert/strict";
import { expandMagicVariables } from "../../kernel/src/magics/expand-variables";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { splitArgs } from "../../kernel/src/magics/split-magic";

const notebook = (values: Record<string, unknown>) => ({
  hasVariable: (name: string) => Object.hasOwn(values, name),
  getVariable: (name: string) => values[name],
});

test("$NAME in a %%distributed line is the notebook variable's value", () => {
  const vars = notebook({ BACKEND: "gpus", N: 2 });
  const args = expandMagicVariables("%%distributed", "-n $N --backend $BACKEND --link bandwidth=1Gbit", vars);
  assert.equal(args, "-n 2 --backend gpus --link bandwidth=1Gbit");
  const options = parseDistributedFlags(splitArgs(args));
  assert.equal(options.backend, "gpus");
  assert.equal(options.workers, 2);
  assert.equal(expandMagicVariables("%%distributed", "-n 2 # costs $$5", vars), "-n 2 # costs $5");
});

test("an unknown or unusable $NAME fails naming the variable", () => {
  const vars = notebook({ SPACED: "a b", LIST: [1] });
  assert.throws(() => expandMagicVariables("%%distributed", "--backend $BACKEND", vars), { name: "UsageError", message: /\$BACKEND is not a notebook variable/ });
  assert.throws(() => expandMagicVariables("%%distributed", "--backend $SPACED", vars), /\$SPACED must be a string without spaces.*got "a b"/);
  assert.throws(() => expandMagicVariables("%%distributed", "-n $LIST", vars), /\$LIST must be .* got an array/);
  assert.throws(() => expandMagicVariables("%%distributed", "--backend $BACKEND", undefined), /\$BACKEND is not a notebook variable/);
});
