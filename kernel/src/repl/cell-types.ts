/**
 * Type declarations that cells see but that no file on disk provides: the
 * in-cell module `distlab` and the globals of each chain's prelude.
 *
 * They are served as virtual files under `<cwd>/node_modules/distlab/` (see
 * type-resolution.ts), so they type-check from any notebook folder, with or
 * without a node_modules of its own.
 */

/** `import ... from "distlab"` inside a cell: the display API plus distlab's own additions. */
export const DISTLAB_MODULE_TYPES = `
import type { Display as TslabDisplay } from "tslab";

/** tslab's Display; \`raw\` also takes an object for JSON mime types (\`application/json\`, \`*+json\`). */
export interface Display extends Omit<TslabDisplay, "raw"> {
  raw(contentType: string, b: string | Uint8Array | object): void;
}

/** Writes rich outputs under the running cell (same API as tslab's \`display\`). */
export declare const display: Display;
/** A display with its own id: every later call replaces what it showed last. */
export declare function newDisplay(): Display;
/** Clears the running cell's output; with \`wait\`, only when the next output arrives. */
export declare function clearOutput(wait?: boolean): void;
/** Asks the user for a line of text (Jupyter input_request). Async, unlike the browser's prompt. */
export declare function prompt(message?: string): Promise<string>;
/** A Jupyter mime bundle: mime type -> data. */
export type MimeBundle = Record<string, unknown>;
/** Give a value this method to choose how it shows as a cell result. */
export declare const mimeBundle: unique symbol;

// The collective and \`dist\` types are the cluster's own declarations (type-resolution.ts maps them), so
// what a cell type-checks against is what the ranks run.
export type { Dist, Collectable } from "./cluster/rank-side/dist-api";
export type { ReduceOp, CollectiveOptions, AllReduceOptions, Algorithm, LinkModel } from "./comm/types";
`;

/** Globals of every notebook cell. */
export const NOTEBOOK_GLOBAL_TYPES = `
export {};
declare global {
  /** Asks the user for a line of text (Jupyter input_request). Async: \`const name = await prompt("name?")\`. */
  function prompt(message?: string): Promise<string>;
}
`;

/** Globals of a %%distributed cell: \`dist\` and \`tf\` on top of the notebook's. */
export const RANK_GLOBAL_TYPES = `
export {};
declare global {
  /** This rank's identity and the collectives of its group. */
  const dist: import("distlab").Dist;
  /** TensorFlow.js on the best backend this rank has. */
  const tf: typeof import("@tensorflow/tfjs");
  function prompt(message?: string): Promise<string>;
}
`;

/** Names the runtime must provide to a chain's cells (as parameters of the cell function). */
export const NOTEBOOK_GLOBAL_NAMES = ["prompt"] as const;
export const RANK_GLOBAL_NAMES = ["dist", "tf", "prompt"] as const;

/**
 * Subpaths of the in-cell `distlab` module that are real compiled folders of
 * the kernel (`kernel/dist/<name>/index.{js,d.ts}`), not virtual files:
 * `import { DataParallel } from "distlab/techniques"`.
 */
export const DISTLAB_LIBRARY_DIRS: readonly string[] = ["techniques", "models", "data"];

/** Virtual files, relative to `<cwd>/node_modules/distlab/`. */
export const VIRTUAL_DISTLAB_FILES: Readonly<Record<string, string>> = {
  "index.d.ts": DISTLAB_MODULE_TYPES,
  "notebook-globals.d.ts": NOTEBOOK_GLOBAL_TYPES,
  "rank-globals.d.ts": RANK_GLOBAL_TYPES,
};

/** A prelude line that pulls a globals file into a chain's declarations. */
export const NOTEBOOK_PRELUDE = `import "distlab/notebook-globals";\n`;
export const RANK_PRELUDE = `import "distlab/rank-globals";\n`;
