/** Errors of the TypeScript REPL: a cell that does not compile, a run that was interrupted. */

export interface CellDiagnostic {
  /** 1-based, in the cell's own coordinates */
  line: number;
  /** 1-based, UTF-16 code units */
  column: number;
  message: string;
  /** Set when the diagnostic is in another file (a declaration of an earlier cell, a module). */
  file?: string;
}

/** A cell failed to type-check or parse; the message lists each diagnostic as `line:col - message`. */
export class CompileError extends Error {
  override readonly name = "CompileError";
  constructor(readonly diagnostics: readonly CellDiagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
  }
}

export function formatDiagnostic(d: CellDiagnostic): string {
  return `${d.file ? `${d.file} ` : ""}${d.line}:${d.column} - ${d.message}`;
}

/** A run stopped by an interrupt (SIGINT during synchronous code, or its AbortSignal while awaiting). */
export class InterruptedError extends Error {
  override readonly name = "InterruptedError";
  constructor(message = "Interrupted") {
    super(message);
  }
}
