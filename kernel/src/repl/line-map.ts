/**
 * Maps positions in a cell's compiled JavaScript back to the cell's own lines.
 *
 * tslab's converter emits no source map (and its compiler options cannot be
 * changed from outside), and TypeScript's printer drops blank lines and
 * re-indents, so JS lines drift from cell lines. Before conversion, every
 * statement of the cell gets a marker comment `/*@cell:LINE*\/` in front of
 * its first token; comments survive emit, so after conversion each JS line
 * maps to the last marker at or above it plus the lines since (statements
 * keep their inner line breaks). Markers are then stripped from the JS.
 * Columns are found by locating the JS text at the column in the cell line
 * (cell-position.ts).
 */
import type * as TS from "@tslab/typescript-for-tslab";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ts = require("@tslab/typescript-for-tslab") as typeof TS;

// The printer puts a space after a leading comment; it goes with the marker.
const MARKER = /\/\*@cell:(\d+)\*\/ ?/g;

/** Text put into the source (a marker, or a shorthand's `: name`): at `column` (0-based, original text) of `line` (0-based). */
interface Insertion {
  line: number;
  column: number;
  length: number;
}

export interface MarkedSource {
  text: string;
  /** Per 0-based line, the insertions made on it, left to right. */
  insertions: Map<number, Insertion[]>;
}

/**
 * Inserts a line marker before each statement (erased type-only statements excepted), and
 * spells out each shorthand property: `{ nLayer }` becomes `{ nLayer: nLayer }`. tslab's
 * converter rewrites a reference to an earlier cell's declaration as `exports.NAME`, but it
 * resolves a shorthand's name to the property rather than to the variable and leaves it,
 * so `{ nLayer }` would throw "nLayer is not defined" whenever `nLayer` came from an earlier
 * cell. The long form means the same in every position a shorthand can take (object
 * literals, and destructuring assignments, where `{ a = 1 }` becomes `{ a: a = 1 }`).
 */
export function markStatements(source: string): MarkedSource {
  const file = ts.createSourceFile("cell.ts", source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  /** Text to insert at a position of the original source. */
  const edits: Array<{ at: number; text: (line: number) => string }> = [];
  const statementStarts = new Set<number>();
  const visit = (node: TS.Node): void => {
    const statements = statementsOf(node);
    if (statements) {
      for (const statement of statements) {
        if (!isErasedStatement(statement)) statementStarts.add(statement.getStart(file));
      }
    }
    if (ts.isShorthandPropertyAssignment(node)) {
      const name = node.name.getText(file);
      edits.push({ at: node.name.getEnd(), text: () => `: ${name}` });
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  for (const start of statementStarts) edits.push({ at: start, text: (line) => `/*@cell:${line + 1}*/` });
  edits.sort((a, b) => a.at - b.at);
  const insertions = new Map<number, Insertion[]>();
  let text = "";
  let copied = 0;
  for (const edit of edits) {
    const { line, character } = file.getLineAndCharacterOfPosition(edit.at);
    const inserted = edit.text(line);
    text += source.slice(copied, edit.at) + inserted;
    copied = edit.at;
    const onLine = insertions.get(line) ?? [];
    onLine.push({ line, column: character, length: inserted.length });
    insertions.set(line, onLine);
  }
  text += source.slice(copied);
  return { text, insertions };
}

function statementsOf(node: TS.Node): readonly TS.Statement[] | undefined {
  if (ts.isSourceFile(node) || ts.isBlock(node) || ts.isModuleBlock(node)) return node.statements;
  if (ts.isCaseClause(node) || ts.isDefaultClause(node)) return node.statements;
  // Unbraced bodies (`if (x) throw e`): the printer moves them to a line of their own.
  if (ts.isIfStatement(node)) return node.elseStatement ? [node.thenStatement, node.elseStatement] : [node.thenStatement];
  if (ts.isIterationStatement(node, false) || ts.isLabeledStatement(node)) return [node.statement];
  return undefined;
}

function isErasedStatement(node: TS.Statement): boolean {
  if (ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) return true;
  const modifiers = ts.canHaveModifiers(node) ? ts.getModifiers(node) : undefined;
  return modifiers?.some((m) => m.kind === ts.SyntaxKind.DeclareKeyword) ?? false;
}

/** A column (0-based) in marked text -> the same column in the original text. */
export function unmarkColumn(marked: MarkedSource, line: number, column: number): number {
  let shift = 0;
  for (const insertion of marked.insertions.get(line) ?? []) {
    const markedStart = insertion.column + shift;
    if (column < markedStart) break;
    if (column < markedStart + insertion.length) return insertion.column;
    shift += insertion.length;
  }
  return column - shift;
}

/** Strips markers from converted JS; `cellLines[i]` is the 1-based cell line of JS line i+1 (0: none). */
export function extractLineMap(markedJs: string): { js: string; cellLines: number[] } {
  const cellLines: number[] = [];
  let lastCellLine = 0;
  let sinceMarker = 0;
  /** A marker left at the end of the previous line belongs to this one (`if (x)` + newline + body). */
  let carried: number | undefined;
  const lines = markedJs.split("\n").map((line) => {
    let first: number | undefined;
    let trailing: number | undefined;
    const stripped = line.replace(MARKER, (all, n: string, offset: number) => {
      if (line.slice(offset + all.length).trim() === "") trailing = Number(n);
      else first ??= Number(n);
      return "";
    });
    const hadMarker = first !== undefined || trailing !== undefined;
    first ??= carried;
    carried = trailing;
    if (first !== undefined) {
      lastCellLine = first;
      sinceMarker = 0;
    } else {
      sinceMarker++;
    }
    cellLines.push(lastCellLine === 0 ? 0 : lastCellLine + sinceMarker);
    // Only where a marker was: other lines may be inside a multi-line template literal.
    return hadMarker ? stripped.replace(/\s+$/, "") : stripped;
  });
  return { js: lines.join("\n"), cellLines };
}
