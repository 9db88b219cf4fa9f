/**
 * Recognises magics at the start of a cell.
 *
 * A cell magic (`%%name args`) must be the cell's first non-blank line and
 * takes the rest of the cell as its body. A line magic (`%name args`) is a
 * cell made of that one line. Anything else is plain TypeScript.
 */
import { UsageError } from "../errors";

export type MagicCall =
  | { kind: "cell"; name: string; args: string; body: string; bodyLineOffset: number }
  | { kind: "line"; name: string; args: string; trailingCode: string };

const CELL_MAGIC = /^%%([A-Za-z_][\w-]*)?(.*)$/;
const LINE_MAGIC = /^%([A-Za-z_][\w-]*)?(.*)$/;

/** Returns the magic call the cell starts with, or undefined for a plain cell. */
export function splitMagic(code: string): MagicCall | undefined {
  const lines = code.split("\n");
  let first = 0;
  while (first < lines.length && lines[first]!.trim() === "") first += 1;
  if (first === lines.length) return undefined;
  const head = lines[first]!.trim();
  const cell = CELL_MAGIC.exec(head);
  if (cell) {
    return {
      kind: "cell",
      name: cell[1] ?? "",
      args: (cell[2] ?? "").trim(),
      body: lines.slice(first + 1).join("\n"),
      // The body's line 1 is the cell's line `first + 2`; error stacks add this back.
      bodyLineOffset: first + 1,
    };
  }
  const line = LINE_MAGIC.exec(head);
  if (!line) return undefined;
  // Code after a line magic is reported by the router rather than dropped.
  const trailingCode = lines.slice(first + 1).join("\n").trim();
  return { kind: "line", name: line[1] ?? "", args: (line[2] ?? "").trim(), trailingCode };
}

/**
 * Splits a magic's argument string into words, honouring single and double
 * quotes (`--export "my trace.json"`). Backslash escapes the next character
 * outside single quotes, as in a POSIX shell.
 */
export function splitArgs(args: string): string[] {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let index = 0; index < args.length; index += 1) {
    const char = args[index]!;
    if (quote) {
      if (char === quote) quote = undefined;
      else if (char === "\\" && quote === '"' && index + 1 < args.length) current += args[++index];
      else current += char;
      continue;
    }
    if (char === '"' || char === "'") {
      quote = char;
      inWord = true;
    } else if (char === "\\" && index + 1 < args.length) {
      current += args[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (quote) throw new UsageError(`unterminated ${quote} quote in magic arguments: ${args}`, quote);
  if (inWord) words.push(current);
  return words;
}
