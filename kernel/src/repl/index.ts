/** The TypeScript REPL: cell compilation, cell scopes (main thread or rank thread) and the plain-cell backend. */
export { CellCompiler, type CompiledCell } from "./cell-compiler";
export { declarationCell, type CellCompiling } from "./cell-compiling";
export { CompilerThreads, WARM_UP_ENV } from "./compiler-threads";
export { CellScope, type RunOptions, type RunResult } from "./cell-scope";
export { DeclarationChain } from "./declaration-chain";
export { CompileError, InterruptedError, type CellDiagnostic } from "./errors";
export { formatError, formatValue, type FormattedError } from "./format";
export { activeOutput, runWithOutput, setActiveOutput, writeKernelLog, type CellOutput } from "./output-capture";
export { createDisplayModule, mimeBundleSymbol, type Display, type DisplayModule } from "./display-api";
export { TypeScriptRepl, type TypeScriptReplOptions } from "./typescript-repl";
