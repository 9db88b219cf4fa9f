/**
 * Values and errors as Jupyter sees them: a value becomes an execute_result
 * mime bundle, an error becomes `{ename, evalue, traceback}`.
 */
import { inspect } from "node:util";
import type { MimeBundle } from "../protocol/backend";
import { mimeBundleSymbol } from "./display-api";
import { CompileError } from "./errors";

/** util.inspect settings for text/plain: no colour codes, deep enough for nested configs. */
const INSPECT_OPTIONS = { colors: false, depth: 4, maxArrayLength: 100, maxStringLength: 10_000, breakLength: 100 } as const;

/**
 * The mime bundle for a cell's value; `undefined` shows nothing. A value's own
 * `[mimeBundleSymbol]()` may return the bundle or a promise of it (a plot that
 * renders its SVG asynchronously), hence async.
 */
export async function formatValue(value: unknown): Promise<MimeBundle | undefined> {
  if (value === undefined) return undefined;
  const own = await ownMimeBundle(value);
  if (own) return { "text/plain": inspect(value, INSPECT_OPTIONS), ...own };
  if (isTensorLike(value)) return { "text/plain": value.toString() };
  return { "text/plain": inspect(value, INSPECT_OPTIONS) };
}

async function ownMimeBundle(value: unknown): Promise<MimeBundle | undefined> {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return undefined;
  const method = (value as Record<symbol, unknown>)[mimeBundleSymbol];
  if (typeof method !== "function") return undefined;
  const bundle = await (method as () => unknown).call(value);
  if (typeof bundle !== "object" || bundle === null || Array.isArray(bundle)) {
    throw new TypeError(`[Symbol.for("distlab.mimeBundle")]() must return an object of mime type -> data, got ${inspect(bundle)}`);
  }
  return bundle as MimeBundle;
}

/** A tf.Tensor, recognised by shape so that this module does not load TensorFlow.js. */
function isTensorLike(value: unknown): value is { toString(): string } {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return Array.isArray(candidate.shape) && typeof candidate.dtype === "string" && typeof candidate.dataSync === "function";
}

export interface FormattedError {
  ename: string;
  evalue: string;
  /** Lines a frontend joins with newlines; may carry ANSI colour. */
  traceback: string[];
}

const RED = "\u001b[31m";
const BOLD_RED = "\u001b[1;31m";
const RESET = "\u001b[0m";

export function formatError(error: unknown): FormattedError {
  if (error instanceof CompileError) {
    return {
      ename: error.name,
      evalue: error.message,
      traceback: [`${BOLD_RED}${error.name}${RESET}: the cell does not type-check`, ...error.message.split("\n").map((line) => `${RED}${line}${RESET}`)],
    };
  }
  if (error instanceof Error) {
    const ename = error.name || error.constructor?.name || "Error";
    const stackLines = (error.stack ?? `${ename}: ${error.message}`).split("\n");
    // The first stack lines repeat "Name: message"; show them in colour, then the frames.
    const frameStart = stackLines.findIndex((line) => /^\s+at /.test(line));
    const head = frameStart < 0 ? stackLines : stackLines.slice(0, frameStart);
    const frames = frameStart < 0 ? [] : stackLines.slice(frameStart);
    return { ename, evalue: error.message, traceback: [...head.map((line) => `${BOLD_RED}${line}${RESET}`), ...frames] };
  }
  const shown = inspect(error, INSPECT_OPTIONS);
  return { ename: "Error", evalue: `Uncaught ${shown}`, traceback: [`${BOLD_RED}Uncaught${RESET} ${shown}`] };
}
