/**
 * From a position in a cell's compiled JavaScript (as V8 prints it in a
 * stack frame) to the cell's own line and column, through the line map
 * line-map.ts built at compile time. Kept apart from line-map.ts, which
 * loads the TypeScript compiler: ranks map their errors with this file and
 * never compile, so they start without loading TypeScript.
 */

export interface CellPosition {
  /** 1-based */
  line: number;
  /** 1-based */
  column: number;
}

/**
 * JS position (1-based line and column, as V8 prints them) -> cell position.
 * Undefined when the JS line has no counterpart (helpers tslab adds).
 */
export function jsToCell(
  map: { jsLines: readonly string[]; cellLines: readonly number[]; sourceLines: readonly string[] },
  jsLine: number,
  jsColumn: number,
): CellPosition | undefined {
  const line = map.cellLines[jsLine - 1];
  if (!line || line > map.sourceLines.length) return undefined;
  const cellText = map.sourceLines[line - 1] ?? "";
  const jsText = (map.jsLines[jsLine - 1] ?? "").slice(Math.max(0, jsColumn - 1));
  return { line, column: locateColumn(cellText, jsText) };
}

/** Where `jsText` (the JS from the error's column on) starts in `cellText`; 1-based. */
function locateColumn(cellText: string, jsText: string): number {
  // tslab rewrites names of earlier cells to `exports.NAME`; the cell says NAME.
  for (const candidate of [jsText, jsText.replace(/\bexports\./g, "")]) {
    for (let length = Math.min(candidate.length, 40); length >= 3; length--) {
      const at = cellText.indexOf(candidate.slice(0, length));
      if (at >= 0) return at + 1;
    }
  }
  const indent = cellText.match(/^\s*/)?.[0].length ?? 0;
  return indent + 1;
}
