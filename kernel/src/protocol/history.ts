/**
 * The input history behind history_request: every cell run with
 * store_history, numbered by execution count, in the current kernel session.
 */

interface HistoryEntry {
  line: number;
  input: string;
  /** text/plain of the cell's execute_result, or null when it had none. */
  output: string | null;
}

/** One history_reply row: [session, line, input] or [session, line, [input, output]]. */
export type HistoryRow = [number, number, string | [string, string | null]];

export interface HistoryQuery {
  hist_access_type?: unknown;
  output?: unknown;
  session?: unknown;
  start?: unknown;
  stop?: unknown;
  n?: unknown;
  pattern?: unknown;
  unique?: unknown;
}

/** IPython-style glob (`*` any run, `?` one character) to an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (const char of glob) {
    if (char === "*") source += "[\\s\\S]*";
    else if (char === "?") source += "[\\s\\S]";
    else source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

function optionalInteger(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`history_request ${name} must be an integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

export class HistoryStore {
  /** This kernel's session number; numbers rise with each kernel started, as in IPython. */
  readonly session = 1;
  private readonly entries: HistoryEntry[] = [];

  record(line: number, input: string): void {
    this.entries.push({ line, input, output: null });
  }

  recordOutput(line: number, output: string): void {
    for (let index = this.entries.length - 1; index >= 0; index--) {
      if (this.entries[index].line === line) {
        this.entries[index].output = output;
        return;
      }
    }
  }

  query(request: HistoryQuery): HistoryRow[] {
    const withOutput = request.output === true;
    const n = optionalInteger(request.n, "n");
    let selected: HistoryEntry[];
    switch (request.hist_access_type) {
      case "tail":
        selected = n === undefined ? this.entries.slice() : this.entries.slice(-n);
        if (n === 0) selected = [];
        break;
      case "range": {
        const session = optionalInteger(request.session, "session") ?? 0;
        // Session 0 means "the current one"; negative numbers count back to sessions this kernel does not keep.
        if (session !== 0 && session !== this.session) return [];
        const start = optionalInteger(request.start, "start") ?? 1;
        const stop = optionalInteger(request.stop, "stop");
        selected = this.entries.filter((entry) => entry.line >= start && (stop === undefined || entry.line < stop));
        break;
      }
      case "search": {
        const pattern = typeof request.pattern === "string" ? request.pattern : "*";
        const matcher = globToRegExp(pattern);
        selected = this.entries.filter((entry) => matcher.test(entry.input));
        if (request.unique === true) {
          // Keep the latest occurrence of each distinct input, in history order.
          const seen = new Set<string>();
          selected = selected.reverse().filter((entry) => !seen.has(entry.input) && seen.add(entry.input)).reverse();
        }
        if (n !== undefined) selected = n === 0 ? [] : selected.slice(-n);
        break;
      }
      default:
        throw new TypeError(
          `history_request hist_access_type must be "tail", "range" or "search", got ${JSON.stringify(request.hist_access_type)}`,
        );
    }
    return selected.map((entry) => [this.session, entry.line, withOutput ? [entry.input, entry.output] : entry.input]);
  }
}
