/**
 * Completion, inspection and completeness answers for the Jupyter protocol,
 * built from tslab's converter (positions converted between code points and
 * UTF-16 here).
 */
import type * as TS from "@tslab/typescript-for-tslab";
import type { CompleteOutcome, InspectOutcome, IsCompleteOutcome } from "../protocol/backend";
import type { CellCompiling } from "./cell-compiling";
import type { DeclarationChain } from "./declaration-chain";
import { codePointsToUtf16, utf16ToCodePoints } from "./positions";

/** TypeScript itself, loaded on the first inspection or completeness question (the kernel's thread needs it for nothing else). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const typescript = (): typeof TS => require("@tslab/typescript-for-tslab") as typeof TS;

export async function completeAt(compiler: CellCompiling, chain: DeclarationChain, code: string, cursorPos: number): Promise<CompleteOutcome> {
  const offset = codePointsToUtf16(code, cursorPos);
  const info = await compiler.complete(code, offset, chain);
  return {
    matches: info.candidates,
    cursorStart: utf16ToCodePoints(code, info.start),
    cursorEnd: utf16ToCodePoints(code, info.end),
  };
}

export async function inspectAt(compiler: CellCompiling, chain: DeclarationChain, code: string, cursorPos: number, detailLevel: 0 | 1): Promise<InspectOutcome> {
  const offset = codePointsToUtf16(code, cursorPos);
  // A cursor just after a name (where the user stopped typing) inspects that name.
  const info = (await compiler.inspect(code, offset, chain)) ?? (offset > 0 ? await compiler.inspect(code, offset - 1, chain) : undefined);
  // An undeclared name still gets quick info (kind "", type any): that is "not found", not a page.
  const ts = typescript();
  if (!info || info.kind === ts.ScriptElementKind.unknown) return { found: false, data: {} };
  const signature = ts.displayPartsToString(info.displayParts);
  const docs = ts.displayPartsToString(info.documentation);
  const tags = detailLevel === 1 ? (info.tags ?? []).map((tag) => `@${tag.name} ${ts.displayPartsToString(tag.text)}`.trim()) : [];
  const plain = [signature, docs, ...tags].filter((part) => part !== "").join("\n\n");
  const markdown = ["```typescript\n" + signature + "\n```", docs, ...tags.map((tag) => `*${tag}*`)].filter((part) => part !== "").join("\n\n");
  return { found: true, data: { "text/plain": plain, "text/markdown": markdown } };
}

/**
 * "incomplete" while the code could still become valid by typing more
 * (tslab's rule: the parser expects something at the very end); "invalid"
 * when it has a syntax error elsewhere that more text cannot fix.
 */
export function isCompleteCode(code: string): IsCompleteOutcome {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { isCompleteCode: tslabIsComplete } = require("tslab/dist/converter") as typeof import("tslab/dist/converter");
  // tslab misses "let x = " (trailing blanks after the unfinished part); newlines stay, they carry its
  // "two blank lines force a run" rule.
  const tslabAnswer = tslabIsComplete(code.replace(/[ \t]+$/, ""));
  if (!tslabAnswer.completed) return { status: "incomplete", indent: tslabAnswer.indent ?? "" };
  const ts = typescript();
  const file = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const errors = (file as unknown as { parseDiagnostics?: readonly TS.Diagnostic[] }).parseDiagnostics ?? [];
  return { status: errors.length > 0 ? "invalid" : "complete" };
}
