/**
 * Whether a cell awaits at its top level in a form tslab's converter misses.
 *
 * tslab learns of a top-level await from TypeScript's "await is only allowed
 * in async functions" diagnostic. A cell with no import or export is parsed
 * as a script, where `await (x)` at the start of an expression is a call of
 * a function named `await`: no diagnostic, so the cell would run in a plain
 * function and fail with "await is not defined". The emitted JavaScript is
 * still `await (x)`, which an async function runs as an await; this finds
 * such calls outside any function so the cell gets one.
 */
import type * as TS from "@tslab/typescript-for-tslab";

// The TypeScript that tslab's converter runs on, so both parse alike.
const ts = require("@tslab/typescript-for-tslab") as typeof TS;

export function awaitsAsCall(code: string): boolean {
  const source = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  let found = false;
  const visit = (node: TS.Node): void => {
    if (found || ts.isFunctionLike(node) || ts.isClassLike(node)) return; // their own await rules
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === "await") {
      found = true;
      return;
    }
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(source, visit);
  return found;
}
