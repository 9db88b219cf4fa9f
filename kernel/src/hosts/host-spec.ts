/**
 * `--hosts SPEC`: which agents run a group's ranks, and how many each.
 *
 * SPEC is a hostfile path or a comma-separated list `[user@]host[:port],...`.
 * A hostfile has one host a line in DeepSpeed/MPI style,
 * `[user@]host[:port] [slots=N] [gpus=0,1]`, with `#` comments and blank
 * lines allowed. An entry without slots= has the slots its agent offers
 * (`distlab agent --slots`, the host's CPU count by default). Ranks fill
 * slots in order: the first host's slots, then the next host's.
 *
 * Which launcher reaches an entry (`--launcher auto`, the default): one that
 * names a port is an agent already listening there; one without a port is
 * started through ssh (ssh-launcher.ts). With `--launcher ssh` a port is the
 * ssh port.
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
  /** Whether the entry named its port (else `port` is DEFAULT_AGENT_PORT). */
  portGiven: boolean;
  /** `user@` of the entry, for ssh. */
  user?: string;
  /** From the hostfile; undefined: what the agent offers. */
  slots?: number;
  /** From the hostfile's `gpus=0,1`: the host's GPU indices, one to each of its ranks in order. */
  gpus?: number[];
  /** Where the entry came from, for errors: `line 3` or `entry 2`. */
  where: string;
}

export const LAUNCHERS = ["auto", "agent", "ssh"] as const;
export type LauncherName = (typeof LAUNCHERS)[number];

/** How `entry` is reached under `--launcher launcher`. */
export function launcherOf(entry: HostEntry, launcher: LauncherName): "agent" | "ssh" {
  if (launcher !== "auto") return launcher;
  return entry.portGiven ? "agent" : "ssh";
}

/** The name a host goes by in errors and `%dist hosts`: `[user@]host[:port]` as written. */
export function entryName(entry: HostEntry): string {
  const host = entry.host.includes(":") ? `[${entry.host}]` : entry.host;
  return `${entry.user === undefined ? "" : `${entry.user}@`}${host}${entry.portGiven ? `:${entry.port}` : ""}`;
}

export function parseHostSpec(spec: string): HostEntry[] {
  if (spec.trim() === "") throw new HostsError("--hosts: SPEC is empty; give a hostfile or host:port,...");
  if (existsSync(spec)) return parseHostfile(spec, readFileSync(spec, "utf8"));
  if (!/[,:]/.test(spec) && /[/\\]|\.\w+$/.test(spec)) throw new HostsError(`--hosts ${spec}: no such hostfile`);
  return spec.split(",").map((word, index) => {
    const entry = parseAddress(word.trim(), `entry ${index + 1}`);
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
    const entry = parseAddress(address!, `line ${index + 1}`);
    if (typeof entry === "string") throw new HostsError(`${where}: ${entry}`);
    for (const option of options) {
      const slots = /^slots=(\d+)$/.exec(option);
      const gpus = /^gpus=(\d+(?:,\d+)*)$/.exec(option);
      if (slots) {
        entry.slots = Number(slots[1]);
        if (entry.slots < 1) throw new HostsError(`${where}: slots must be at least 1`);
      } else if (gpus) {
        entry.gpus = gpus[1]!.split(",").map(Number);
        if (new Set(entry.gpus).size !== entry.gpus.length) throw new HostsError(`${where}: gpus= names a GPU twice`);
      } else {
        throw new HostsError(`${where}: ${JSON.stringify(option)} is not slots=N or gpus=I,J,...`);
      }
    }
    if (entry.gpus && entry.slots !== undefined && entry.gpus.length < entry.slots) {
      throw new HostsError(`${where}: slots=${entry.slots} but only ${entry.gpus.length} gpus= (one GPU a rank)`);
    }
    // One rank a GPU: gpus= alone gives the host that many slots.
    if (entry.gpus && entry.slots === undefined) entry.slots = entry.gpus.length;
    entries.push(entry);
  });
  if (entries.length === 0) throw new HostsError(`--hosts ${path}: the hostfile names no host`);
  return entries;
}

/** `[user@]host[:port]` -> entry, or what is wrong with it. */
function parseAddress(word: string, where: string): HostEntry | string {
  const match = /^(?:([A-Za-z0-9._][A-Za-z0-9._-]*)@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?$/.exec(word);
  if (!match) return "not [user@]host[:port]";
  const port = match[3] === undefined ? DEFAULT_AGENT_PORT : Number(match[3]);
  if (port < 1 || port > 65535) return `port ${port} is out of 1..65535`;
  return {
    host: match[2]!.replace(/^\[|\]$/g, ""),
    port,
    portGiven: match[3] !== undefined,
    ...(match[1] === undefined ? {} : { user: match[1] }),
    where,
  };
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
