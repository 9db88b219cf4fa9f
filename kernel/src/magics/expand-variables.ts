/**
 * `$NAME` in a `%%distributed` line is the value of the notebook variable
 * NAME (as IPython expands `$name` in magic lines), so a notebook's
 * parameters cell can choose the flags of every distributed cell:
 *
 *   const BACKEND: string = "threads";      // parameters cell
 *   %%distributed -n 2 --backend $BACKEND   // later cells
 *
 * Only strings and finite numbers expand; `$$` is a literal `$`.
 */
import { UsageError } from "../errors";

export interface NotebookVariables {
  hasVariable(name: string): boolean;
  getVariable(name: string): unknown;
}

const REFERENCE = /\$(\$|[A-Za-z_][A-Za-z0-9_]*)/g;

/** `args` with each `$NAME` replaced by the variable's value; throws UsageError naming the variable. */
export function expandMagicVariables(where: string, args: string, variables: NotebookVariables | undefined): string {
  return args.replace(REFERENCE, (_, name: string) => {
    if (name === "$") return "$";
    if (!variables?.hasVariable(name)) {
      throw new UsageError(`${where}: $${name} is not a notebook variable; define it in a plain cell first (e.g. const ${name} = "...")`, `$${name}`);
    }
    const value = variables.getVariable(name);
    if (typeof value === "string" && !/[\s"'$]/.test(value)) return value;
    if (typeof value === "number" && Number.isFinite(value)) return String(value);
    throw new UsageError(`${where}: $${name} must be a string without spaces, quotes or $ or a finite number to stand in a flag, got ${describe(value)}`, `$${name}`);
  });
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : typeof value;
}
