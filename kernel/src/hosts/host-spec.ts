/**
 * `--hosts SPEC`: which agents run a group's ranks, and how many each.
 *
 * SPEC is a hostfile path or a comma-separated list `host:port,...`. A
 * hostfile has one host a line in DeepSpeed/MPI style, `host[:port] slots=N`,
 * with `#` comments and blank lines allowed. A list entry's slots are the
 * ones its agent offers (`distlab agent --slots`). Ranks fill slots in order:
 * the first host's slots, then the next host's.
 */
import { existsSync, readFileSync } from "node:fs";
import { UsageError } from "../errors";

/** The port an agent listens on when neither `--listen` nor the hostfile says. */
export const DEFAULT_AGENT_PORT = 29470;

/** A bad `--hosts` or an agent that cannot take the group; names the line, host or count at fault. */
export class HostsError extends UsageError {
  constructor(message: string) {
    super(message, "--hosts");
  }
}

export interface HostEntry {
  host: string;
  port: number;
  /** From the hostfile; undefined: what the agent offers. */
  slots?: number;
}

export function parseHostSpec(spec: string): HostEntry[] {
  if (spec.trim() === "") throw new HostsError("--hosts: SPEC is empty; give a hostfile or host:port,...");
  if (existsSync(spec)) return parseHostfile(spec, readFileSync(spec, "utf8"));
  if (!/[,:]/.test(spec) && /[/\\]|\.\w+$/.test(spec)) throw new HostsError(`--hosts ${spec}: no such hostfile`);
  return spec.split(",").map((word, index) => {
    const entry = parseAddress(word.trim(), DEFAULT_AGENT_PORT);
    if (typeof entry === "string") throw new HostsError(`--hosts: entry ${index + 1} (${JSON.stringify(word)}): ${entry}`);
    return entry;
  });
}

export function parseHostfile(path: string, text: string): HostEntry[] {
  const entries: HostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") return;
    const where = `--hosts ${path}: line ${index + 1} (${JSON.stringify(raw.trim())})`;
    const [address, ...options] = line.split(/\s+/);
    const entry = parseAddress(address!.replace(/^[^@]*@/, ""), DEFAULT_AGENT_PORT);
    if (typeof entry === "string") throw new HostsError(`${where}: ${entry}`);
    for (const option of options) {
      const match = /^slots=(\d+)$/.exec(option);
      if (!match) throw new HostsError(`${where}: ${JSON.stringify(option)} is not slots=N`);
      const slots = Number(match[1]);
      if (slots < 1) throw new HostsError(`${where}: slots must be at least 1`);
      entry.slots = slots;
    }
    entries.push(entry);
  });
  if (entries.length === 0) throw new HostsError(`--hosts ${path}: the hostfile names no host`);
  return entries;
}

/** `host[:port]` -> entry, or what is wrong with it. */
function parseAddress(word: string, defaultPort: number): HostEntry | string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?$/.exec(word);
  if (!match) return "not host[:port]";
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port < 1 || port > 65535) return `port ${port} is out of 1..65535`;
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

/**
 * The host index of each rank: ranks fill `slots[0]` slots of host 0, then host 1's, and so on.
 * More ranks than slots is an error naming both counts.
 */
export function assignRanks(size: number, slots: readonly number[], names: readonly string[]): number[] {
  const total = slots.reduce((sum, count) => sum + count, 0);
  if (size > total) {
    const each = names.map((name, index) => `${name}: ${slots[index]}`).join(", ");
    throw new HostsError(`-n ${size} is more ranks than the ${total} slots of --hosts (${each})`);
  }
  const hostOf: number[] = [];
  slots.forEach((count, host) => {
    for (let slot = 0; slot < count && hostOf.length < size; slot++) hostOf.push(host);
  });
  return hostOf;
}
