/** Messages between the kernel's thread and a chain's compiler thread (compiler-threads.ts, compiler-worker.ts). */
import type { CellDiagnostic } from "./errors";

/** A DeclarationChain as plain data: the worker rebuilds it for each request. */
export interface ChainState {
  name: string;
  prelude: string;
  globalNames: readonly string[];
  /** The earlier cells' declarations (.d.ts text), without the prelude. */
  declarations: string;
}

export interface CompilerWorkerData {
  chain: Omit<ChainState, "declarations">;
  /** Create the chain's TypeScript program on start, before the first request (seconds of CPU). */
  createProgram: boolean;
}

export type CompilerRequest =
  | { id: number; op: "compile"; chain: ChainState; code: string }
  | { id: number; op: "complete" | "inspect"; chain: ChainState; code: string; offset: number };

/** Replies carry the request's id; id 0 (PROGRAM_CREATED) says the program asked for on start exists. */
export const PROGRAM_CREATED = 0;

export type CompilerReply =
  | { id: number; ok: true; value: unknown }
  /** The cell does not compile. */
  | { id: number; ok: false; diagnostics: readonly CellDiagnostic[] }
  /** Anything else the compiler threw. */
  | { id: number; ok: false; error: { name: string; message: string; stack?: string } };
