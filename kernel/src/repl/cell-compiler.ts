/**
 * Type-checks and transpiles one cell, once, with tslab's converter.
 *
 * The output is plain data (structured-clone friendly) so a %%distributed
 * cell compiled here in the kernel can be shipped to every rank's thread and
 * run there by a CellScope.
 */
import type { CompletionInfo, Converter } from "tslab/dist/converter";
import type * as TS from "@tslab/typescript-for-tslab";
import { CompileError, type CellDiagnostic } from "./errors";
import { DeclarationChain } from "./declaration-chain";
import { installTypeResolution } from "./type-resolution";
import { extractLineMap, markStatements, unmarkColumn } from "./line-map";
import { awaitsAsCall } from "./top-level-await";
import { declarationCell, type CellCompiling } from "./cell-compiling";

export interface CompiledCell {
  /** Name of the chain it was compiled against ("notebook", "ranks"). */
  chain: string;
  /** CommonJS body; reads and writes cell state through `exports`, loads modules through `require`. */
  js: string;
  /** The `exports` key that holds the last expression's value, when the cell ends in an expression. */
  lastExpressionVar?: string;
  /** True when the body awaits at top level: it must run as an async function. */
  hasTopLevelAwait: boolean;
  /** The chain's declarations once this cell has run (pass to `chain.advance`). */
  declarations: string;
  /** Globals the runtime passes in as parameters (from the chain's prelude). */
  globals: readonly string[];
  /** The cell as written; for mapping stack positions. */
  source: string;
  /** 1-based cell line of each JS line (index = JS line - 1); 0 where none. */
  cellLines: number[];
}

/** Compiled cells kept for re-runs (each holds its JS and declarations: kilobytes). */
const COMPILED_CELLS_KEPT = 64;

const PRELUDE_IMPORT = /^import "distlab\/[a-z-]+";\n/gm;
const MARKER_COMMENT = /\/\*@cell:\d+\*\//g;

/**
 * One tslab converter per chain: a converter rebuilds its whole program state
 * when the set of type files changes, and the ranks' prelude pulls in
 * TensorFlow.js's types, so alternating chains on one converter cost about a
 * second per cell; separate converters keep each at tens of milliseconds.
 */
export class CellCompiler implements CellCompiling {
  readonly #converters = new Map<string, Converter>();
  /**
   * Cells compiled without error, by chain, declarations and source: the same cell run again on
   * an unchanged chain (a training cell re-run, a cell that declares nothing) is not type-checked
   * again. Insertion order = age; the oldest goes first.
   */
  readonly #compiled = new Map<string, CompiledCell>();
  readonly cwd: string;

  /** `cwd`: where cells resolve modules from; tslab's converter takes it from the process. */
  constructor() {
    this.cwd = process.cwd();
  }

  /** True once the chain's TypeScript program exists (a cell or a warm-up made it). */
  hasProgram(chain: DeclarationChain): boolean {
    return this.#converters.has(chain.name);
  }

  /** Creates the chain's TypeScript program now (seconds of CPU) instead of on its first cell. */
  createProgram(chain: DeclarationChain = DeclarationChain.notebook()): void {
    this.compile("0", new DeclarationChain(chain.name, chain.prelude, chain.globalNames));
  }

  /** Throws CompileError listing every diagnostic in the cell's coordinates. */
  compile(code: string, chain: DeclarationChain): CompiledCell {
    const key = `${chain.name}\u0000${chain.withPrelude}\u0000${code}`;
    const cached = this.#compiled.get(key);
    if (cached) return cached;
    const compiled = this.compileUncached(code, chain);
    if (this.#compiled.size >= COMPILED_CELLS_KEPT) this.#compiled.delete(this.#compiled.keys().next().value!);
    this.#compiled.set(key, compiled);
    return compiled;
  }

  private compileUncached(code: string, chain: DeclarationChain): CompiledCell {
    const marked = markStatements(code);
    const result = this.converter(chain).convert(chain.withPrelude, marked.text);
    if (result.diagnostics.length > 0) {
      throw new CompileError(
        result.diagnostics.map((d): CellDiagnostic => {
          const inCell = d.fileName === undefined;
          const column = inCell ? unmarkColumn(marked, d.start.line, d.start.character) : d.start.character;
          const message = typeof d.messageText === "string" ? d.messageText : String(d.messageText);
          return { line: d.start.line + 1, column: column + 1, message, ...(inCell ? {} : { file: d.fileName }) };
        }),
      );
    }
    const { js, cellLines } = extractLineMap(result.output ?? "");
    return {
      chain: chain.name,
      js,
      ...(result.lastExpressionVar ? { lastExpressionVar: result.lastExpressionVar } : {}),
      hasTopLevelAwait: result.hasToplevelAwait === true || awaitsAsCall(code),
      declarations: (result.declOutput ?? "").replace(PRELUDE_IMPORT, "").replace(MARKER_COMMENT, ""),
      globals: chain.globalNames,
      source: code,
      cellLines,
    };
  }

  /**
   * Declares `name` in `chain` with type `typeText` (e.g. after `%dist pull NAME`), replacing any
   * earlier declaration of it, so later cells type-check against it.
   */
  declareVariable(chain: DeclarationChain, name: string, typeText = "any"): void {
    const compiled = this.compile(declarationCell(name, typeText), chain);
    chain.replaceDeclarations(compiled.declarations);
  }

  /** Completion at a UTF-16 offset of `code`. */
  complete(code: string, offset: number, chain: DeclarationChain): CompletionInfo {
    return this.converter(chain).complete(chain.withPrelude, code, offset);
  }

  /** Quick info (type and docs) at a UTF-16 offset of `code`. */
  inspect(code: string, offset: number, chain: DeclarationChain): TS.QuickInfo | undefined {
    return this.converter(chain).inspect(chain.withPrelude, code, offset) ?? undefined;
  }

  /** Releases the converters' file watchers (they keep the process alive). */
  close(): void {
    for (const converter of this.#converters.values()) converter.close();
    this.#converters.clear();
  }

  private converter(chain: DeclarationChain): Converter {
    let converter = this.#converters.get(chain.name);
    if (!converter) {
      if (process.cwd() !== this.cwd) {
        throw new Error(`CellCompiler: the working directory changed from ${this.cwd} to ${process.cwd()}; tslab's converter resolves from the cwd`);
      }
      installTypeResolution(this.cwd);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { createConverter } = require("tslab/dist/converter") as typeof import("tslab/dist/converter");
      converter = createConverter();
      this.#converters.set(chain.name, converter);
    }
    return converter;
  }
}
