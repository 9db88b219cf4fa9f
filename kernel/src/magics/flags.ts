/**
 * A small declarative flag parser: one spec per magic is the single source of
 * parsing, help text and completion.
 *
 * Hand-written rather than taken from `node:util.parseArgs` because that
 * parser neither checks types, ranges nor choices, nor produces messages that
 * name the magic; commander/yargs assume a process argv and print/exit.
 */
import { UsageError } from "../errors";

export type FlagValue = number | string | boolean;

interface FlagBase {
  /** Long name without dashes: `workers` is `--workers`. */
  name: string;
  /** One-letter alias without the dash: `n` is `-n`. */
  alias?: string;
  /** One line of help. */
  help: string;
}

export type FlagSpec = FlagBase &
  (
    | { type: "integer"; valueName: string; default?: number; min: number; max: number; rangeReason?: string }
    | { type: "number"; valueName: string; default?: number; min: number; max: number; rangeReason?: string }
    | { type: "choice"; valueName: string; default?: string; choices: readonly string[]; defaultHelp?: string }
    | { type: "string"; valueName: string; default?: string }
    | { type: "boolean" }
  );

export interface PositionalSpec {
  valueName: string;
  help: string;
  optional?: boolean;
}

/** Parsed flags keyed by long name, defaults filled in; plus positionals in order. */
export interface ParsedFlags {
  values: Map<string, FlagValue>;
  positionals: string[];
  /** Long names of the flags the user typed (the rest of `values` are defaults). */
  given: ReadonlySet<string>;
}

export function flagLabel(flag: FlagSpec): string {
  const long = `--${flag.name}`;
  return flag.alias ? `-${flag.alias}/${long}` : long;
}

/**
 * Parses `words` against `flags`. `where` names the magic in messages
 * (`%%distributed`). Accepts `--name value`, `--name=value`, `-a value`.
 */
export function parseFlags(
  where: string,
  words: readonly string[],
  flags: readonly FlagSpec[],
  positionals: readonly PositionalSpec[] = [],
): ParsedFlags {
  const values = new Map<string, FlagValue>();
  const seen = new Set<string>();
  const found: string[] = [];
  for (let index = 0; index < words.length; index += 1) {
    const word = words[index]!;
    if (!word.startsWith("-") || word === "-" || /^-\d/.test(word)) {
      found.push(word);
      continue;
    }
    const eq = word.indexOf("=");
    const typed = eq >= 0 ? word.slice(0, eq) : word;
    const flag = findFlag(flags, typed);
    if (!flag) throw unknownFlag(where, typed, flags);
    if (seen.has(flag.name)) throw new UsageError(`${where}: ${typed} given twice`, typed);
    seen.add(flag.name);
    if (flag.type === "boolean") {
      if (eq >= 0) throw new UsageError(`${where}: ${typed} takes no value (got '${word.slice(eq + 1)}')`, typed);
      values.set(flag.name, true);
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = word.slice(eq + 1);
    else {
      const next = words[index + 1];
      if (next === undefined || (next.startsWith("--") && findFlag(flags, next.split("=")[0]!))) {
        throw new UsageError(`${where}: ${typed} needs a value ${flag.valueName}`, typed);
      }
      raw = next;
      index += 1;
    }
    values.set(flag.name, convert(where, typed, flag, raw));
  }
  const required = positionals.filter((p) => !p.optional).length;
  if (found.length < required) {
    const missing = positionals[found.length]!;
    throw new UsageError(`${where}: missing ${missing.valueName} (${missing.help})`, missing.valueName);
  }
  if (found.length > positionals.length) {
    const extra = found[positionals.length]!;
    throw new UsageError(`${where}: unexpected argument '${extra}'`, extra);
  }
  for (const flag of flags) {
    if (!values.has(flag.name) && flag.type !== "boolean" && flag.default !== undefined) {
      values.set(flag.name, flag.default);
    }
  }
  return { values, positionals: found, given: seen };
}

function findFlag(flags: readonly FlagSpec[], typed: string): FlagSpec | undefined {
  if (typed.startsWith("--")) return flags.find((flag) => flag.name === typed.slice(2));
  return flags.find((flag) => flag.alias !== undefined && `-${flag.alias}` === typed);
}

function unknownFlag(where: string, typed: string, flags: readonly FlagSpec[]): UsageError {
  const known = flags.map((flag) => `--${flag.name}`);
  const close = known.filter((name) => name.startsWith(typed.slice(0, 4)) && typed.length > 2);
  const hint = close.length > 0 ? `; did you mean ${close.join(" or ")}?` : `; known flags: ${known.join(", ")}`;
  return new UsageError(`${where}: unknown flag ${typed}${hint}`, typed);
}

function convert(where: string, typed: string, flag: FlagSpec, raw: string): FlagValue {
  switch (flag.type) {
    case "integer":
    case "number": {
      const pattern = flag.type === "integer" ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
      if (!pattern.test(raw)) {
        throw new UsageError(`${where}: ${typed} expects ${flag.type === "integer" ? "an integer" : "a number"} ${flag.valueName}, got '${raw}'`, typed);
      }
      const value = Number(raw);
      if (value < flag.min || value > flag.max) {
        const reason = flag.rangeReason ? ` (${flag.rangeReason})` : "";
        throw new UsageError(`${where}: ${typed} must be between ${flag.min} and ${flag.max}, got ${raw}${reason}`, typed);
      }
      return value;
    }
    case "choice":
      if (!flag.choices.includes(raw)) {
        throw new UsageError(`${where}: ${typed} must be one of ${flag.choices.join("|")}, got '${raw}'`, typed);
      }
      return raw;
    case "string":
      if (raw === "") throw new UsageError(`${where}: ${typed} needs a non-empty ${flag.valueName}`, typed);
      return raw;
    case "boolean":
      return true;
  }
}

/** Flag names (long and short) that start with `prefix`, for tab completion. */
export function completeFlag(flags: readonly FlagSpec[], prefix: string): string[] {
  const names = flags.flatMap((flag) => (flag.alias ? [`-${flag.alias}`, `--${flag.name}`] : [`--${flag.name}`]));
  return names.filter((name) => name.startsWith(prefix));
}

/** Help lines for a list of flags, aligned in two columns. */
export function flagHelpLines(flags: readonly FlagSpec[]): string[] {
  const left = flags.map((flag) => {
    const names = flag.alias ? `-${flag.alias}, --${flag.name}` : `    --${flag.name}`;
    return flag.type === "boolean" ? names : `${names} ${flag.valueName}`;
  });
  const width = Math.max(...left.map((text) => text.length)) + 2;
  return flags.map((flag, index) => `  ${left[index]!.padEnd(width)}${flag.help}${describeDefault(flag)}`);
}

function describeDefault(flag: FlagSpec): string {
  switch (flag.type) {
    case "integer":
    case "number":
      return ` (${flag.min}..${flag.max}${flag.default !== undefined ? `, default ${flag.default}` : ""})`;
    case "choice": {
      const shown = flag.defaultHelp ?? flag.default;
      return ` (${flag.choices.join("|")}${shown !== undefined ? `; default ${shown}` : ""})`;
    }
    case "string":
      return flag.default !== undefined ? ` (default ${flag.default})` : "";
    case "boolean":
      return "";
  }
}
