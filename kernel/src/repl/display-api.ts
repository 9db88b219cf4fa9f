/**
 * The display API that cells get from `require("tslab")` and `require("distlab")`.
 *
 * Same surface as tslab's `display` / `newDisplay()` so tslab notebooks run
 * unchanged; calls reach the active execution's output (output-capture.ts).
 */
import { randomBytes } from "node:crypto";
import type { MimeBundle } from "../protocol/backend";
import { activeOutput, type CellOutput } from "./output-capture";

/** A value's own rich representation: `value[mimeBundleSymbol]()` returns a mime bundle, or a promise of one. */
export const mimeBundleSymbol: unique symbol = Symbol.for("distlab.mimeBundle") as never;

export interface Display {
  javascript(s: string): void;
  html(s: string): void;
  markdown(s: string): void;
  latex(s: string): void;
  svg(s: string): void;
  png(b: Uint8Array): void;
  jpeg(b: Uint8Array): void;
  gif(b: Uint8Array): void;
  pdf(b: Uint8Array): void;
  text(s: string): void;
  /** Binary data goes out base64-encoded; `+json` types take an object or a JSON string. */
  raw(contentType: string, b: string | Uint8Array | object): void;
}

function currentOutput(what: string): CellOutput {
  const output = activeOutput();
  if (!output) throw new Error(`${what}: no cell is running, so there is nowhere to show this`);
  return output;
}

/** Turns what a user passed for `contentType` into Jupyter's wire form for that type. */
export function encodeMimeData(contentType: string, b: unknown): unknown {
  if (typeof contentType !== "string" || !/^[\w.+-]+\/[\w.+-]+$/.test(contentType)) {
    throw new TypeError(`display.raw: '${String(contentType)}' is not a mime type like text/html`);
  }
  const isJson = contentType === "application/json" || contentType.endsWith("+json");
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
  if (isJson) {
    if (typeof b !== "string") return b;
    try {
      return JSON.parse(b);
    } catch (error) {
      throw new TypeError(`display.raw: the ${contentType} string is not valid JSON (${(error as Error).message})`);
    }
  }
  if (typeof b !== "string") {
    throw new TypeError(`display.raw: ${contentType} takes a string or Uint8Array, got ${b === null ? "null" : typeof b}`);
  }
  return b;
}

class BoundDisplay implements Display {
  #shown = false;
  constructor(private readonly displayId?: string) {}
  javascript(s: string): void { this.raw("text/javascript", s); }
  html(s: string): void { this.raw("text/html", s); }
  markdown(s: string): void { this.raw("text/markdown", s); }
  latex(s: string): void { this.raw("text/latex", s); }
  svg(s: string): void { this.raw("image/svg+xml", s); }
  png(b: Uint8Array): void { this.raw("image/png", b); }
  jpeg(b: Uint8Array): void { this.raw("image/jpeg", b); }
  gif(b: Uint8Array): void { this.raw("image/gif", b); }
  pdf(b: Uint8Array): void { this.raw("application/pdf", b); }
  text(s: string): void { this.raw("text/plain", s); }
  raw(contentType: string, b: string | Uint8Array | object): void {
    const data: MimeBundle = { [contentType]: encodeMimeData(contentType, b) };
    const output = currentOutput("display");
    if (this.displayId === undefined) {
      output.display({ data, metadata: {} });
      return;
    }
    // The first call creates the display; later ones replace it in place.
    output.display({ data, metadata: {}, transient: { display_id: this.displayId } }, this.#shown);
    this.#shown = true;
  }
}

export interface DisplayModule {
  display: Display;
  newDisplay(): Display;
  clearOutput(wait?: boolean): void;
  prompt(message?: string): Promise<string>;
  mimeBundle: typeof mimeBundleSymbol;
  versions: { distlab: string; tslab: string; typescript: string; node: string };
}

/** The object `require("distlab")` returns in a cell; `require("tslab")` returns the same. */
export function createDisplayModule(): DisplayModule {
  return {
    display: new BoundDisplay(),
    newDisplay: () => new BoundDisplay(randomBytes(8).toString("hex")),
    clearOutput: (wait = false): void => {
      currentOutput("clearOutput").clearOutput(wait);
    },
    prompt: (message = "") => {
      if (typeof message !== "string") {
        return Promise.reject(new TypeError(`prompt: message must be a string, got ${typeof message}`));
      }
      try {
        return currentOutput("prompt").input(message);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    mimeBundle: mimeBundleSymbol,
    versions: {
      distlab: (require("../../package.json") as { version: string }).version,
      tslab: (require("tslab/package.json") as { version: string }).version,
      typescript: (require("@tslab/typescript-for-tslab/package.json") as { version: string }).version,
      node: process.version,
    },
  };
}
