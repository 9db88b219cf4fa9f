/**
 * The `%dist` line magic: its subcommands (each with positionals and flags)
 * and the typed command the parser produces. Help and completion come from
 * the same table.
 */
import { UsageError } from "../errors";
import { completeFlag, flagHelpLines, parseFlags, type FlagSpec, type PositionalSpec } from "./flags";

interface SubcommandSpec {
  name: DistCommand["command"];
  positionals: readonly PositionalSpec[];
  flags: readonly FlagSpec[];
  help: string;
}

const NAME: PositionalSpec = { valueName: "NAME", help: "a variable of the notebook's own scope" };

export const DIST_SUBCOMMANDS: readonly SubcommandSpec[] = [
  { name: "status", positionals: [], flags: [], help: "group shape; per rank: alive/busy, heap used, TensorFlow.js backend" },
  { name: "stop", positionals: [], flags: [], help: "stop the group's ranks (their state is lost)" },
  { name: "hosts", positionals: [], flags: [], help: "with --hosts: each host's agent version, ranks, GPUs, round-trip time and link bandwidth (measured at group start)" },
  { name: "push", positionals: [NAME], flags: [], help: "copy NAME from the notebook into every rank (structured clone)" },
  { name: "pull", positionals: [NAME], flags: [], help: "set NAME in the notebook to the array of every rank's NAME, indexed by rank" },
  {
    name: "scatter",
    positionals: [NAME],
    flags: [],
    help: "split the array NAME across ranks in order; the first (length % size) ranks get one extra element",
  },
  { name: "gather", positionals: [NAME], flags: [], help: "set NAME in the notebook to the ranks' arrays NAME concatenated in rank order" },
  {
    name: "timeline",
    positionals: [],
    flags: [
      { name: "export", type: "string", valueName: "FILE", help: "write the last timeline as a Chrome trace to FILE, and one file per rank for Holistic Trace Analysis in FILE.hta/" },
      { name: "into", type: "string", valueName: "NAME", help: "set NAME in the notebook to the last timeline's payload (spans and summary)" },
    ],
    help: "show the timeline of the last distributed cell",
  },
  { name: "doctor", positionals: [], flags: [], help: "what this machine offers (Node, TF.js backends, GPUs, launchers, Jupyter) and the fix for each missing piece" },
  { name: "help", positionals: [], flags: [], help: "show this help and the %%distributed flags" },
];

export type DistCommand =
  | { command: "status" | "stop" | "hosts" | "help" | "doctor" }
  | { command: "push" | "pull" | "scatter" | "gather"; name: string }
  | { command: "timeline"; exportFile?: string; into?: string };

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Parses the words after `%dist`; throws `UsageError` naming the word at fault. */
export function parseDistCommand(words: readonly string[]): DistCommand {
  const [word, ...rest] = words;
  if (word === undefined) throw new UsageError(`%dist: missing subcommand (one of ${subcommandNames()}); try %dist help`, "%dist");
  const spec = DIST_SUBCOMMANDS.find((candidate) => candidate.name === word);
  if (!spec) throw new UsageError(`%dist: unknown subcommand '${word}' (known: ${subcommandNames()})`, word);
  const where = `%dist ${spec.name}`;
  const parsed = parseFlags(where, rest, spec.flags, spec.positionals);
  switch (spec.name) {
    case "push":
    case "pull":
    case "scatter":
    case "gather": {
      const name = parsed.positionals[0]!;
      if (!IDENTIFIER.test(name)) throw new UsageError(`${where}: NAME must be an identifier, got '${name}'`, name);
      return { command: spec.name, name };
    }
    case "timeline": {
      const exportFile = parsed.values.get("export") as string | undefined;
      const into = parsed.values.get("into") as string | undefined;
      if (into !== undefined && !IDENTIFIER.test(into)) throw new UsageError(`${where} --into: NAME must be an identifier, got '${into}'`, "--into");
      return { command: "timeline", ...(exportFile === undefined ? {} : { exportFile }), ...(into === undefined ? {} : { into }) };
    }
    default:
      return { command: spec.name as "status" | "stop" | "hosts" | "help" | "doctor" };
  }
}

function subcommandNames(): string {
  return DIST_SUBCOMMANDS.map((spec) => spec.name).join(", ");
}

export function distHelp(): string {
  const usage = DIST_SUBCOMMANDS.map((spec) => {
    const args = [...spec.positionals.map((p) => p.valueName), ...spec.flags.map((f) => `[--${f.name}${f.type === "boolean" ? "" : ` ${f.valueName}`}]`)];
    return { left: `%dist ${[spec.name, ...args].join(" ")}`, spec };
  });
  const width = Math.max(...usage.map((entry) => entry.left.length)) + 2;
  return usage.flatMap(({ left, spec }) => [`  ${left.padEnd(width)}${spec.help}`, ...flagHelpLines(spec.flags).map((line) => `    ${line}`)]).join("\n");
}

/** Completions for the word ending at the cursor in a `%dist ...` line. */
export function completeDist(words: readonly string[], partial: string): string[] {
  if (words.length === 0) return DIST_SUBCOMMANDS.map((spec) => spec.name).filter((name) => name.startsWith(partial));
  const spec = DIST_SUBCOMMANDS.find((candidate) => candidate.name === words[0]);
  return spec && partial.startsWith("-") ? completeFlag(spec.flags, partial) : [];
}
