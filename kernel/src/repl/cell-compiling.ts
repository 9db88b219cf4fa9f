/**
 * The compiler as the kernel's thread uses it, with nothing that loads
 * TypeScript itself (the kernel's thread never does: compiler-threads.ts).
 */
import type { CompletionInfo } from "tslab/dist/converter";
import type * as TS from "@tslab/typescript-for-tslab";
import type { CompiledCell } from "./cell-compiler";
import type { DeclarationChain } from "./declaration-chain";

/**
 * What the kernel needs of a compiler. Implemented in this thread by CellCompiler (tests, tools)
 * and off the kernel's thread by CompilerThreads (compiler-threads.ts, the kernel's). Callers
 * await every answer; CellCompiler's come back at once.
 */
export interface CellCompiling {
  /** Rejects (or throws) CompileError listing every diagnostic in the cell's coordinates. */
  compile(code: string, chain: DeclarationChain): CompiledCell | Promise<CompiledCell>;
  /** Completion at a UTF-16 offset of `code`. */
  complete(code: string, offset: number, chain: DeclarationChain): CompletionInfo | Promise<CompletionInfo>;
  /** Quick info (type and docs) at a UTF-16 offset of `code`. */
  inspect(code: string, offset: number, chain: DeclarationChain): TS.QuickInfo | undefined | Promise<TS.QuickInfo | undefined>;
  /** Declares `name` in `chain` with type `typeText`, replacing any earlier declaration of it. */
  declareVariable(chain: DeclarationChain, name: string, typeText?: string): void | Promise<void>;
  close(): void;
}

/** The cell that declares `name: typeText` (its declarations replace the chain's); throws on a name that is not an identifier. */
export function declarationCell(name: string, typeText = "any"): string {
  if (!/^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u.test(name)) {
    throw new TypeError(`declareVariable: '${name}' is not a JavaScript identifier`);
  }
  return `let ${name}: ${typeText};`;
}
