/** Messages between the kernel's thread and a chain's compiler thread (compiler-threads.ts, compiler-worker.ts). */
import type { CellDiagnostic } from "./errors";

export interface CompilerWorkerData {
  /** The thread's DeclarationChain as plain data; each request brings the chain's declarations. */
  chain: { name: string; prelude: string; globalNames: readonly string[] };
  /** Create the chain's TypeScript program on start, before the first request (seconds of CPU). */
  createProgram: boolean;
}

/** `declarations`: the chain's earlier cells (.d.ts text, without the prelude) as the kernel's thread holds them now. */
export type CompilerRequest =
  | { id: number; op: "compile"; declarations: string; code: string }
  | { id: number; op: "complete" | "inspect"; declarations: string; code: string; offset: number };

/** Replies carry the request's id; id 0 (PROGRAM_CREATED) says the program asked for on start exists. */
export const PROGRAM_CREATED = 0;

export type CompilerReply =
  | { id: number; ok: true; value: unknown }
  /** The cell does not compile. */
  | { id: number; ok: false; diagnostics: readonly CellDiagnostic[] }
  /** Anything else the compiler threw. */
  | { id: number; ok: false; error: { name: string; message: string; stack?: string } };
