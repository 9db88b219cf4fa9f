/**
 * `--memory SIZE` of `%%distributed`: how much memory each rank may hold.
 * Sizes read as a number and a unit: `4GiB`, `512MiB`, `1.5G` (binary units
 * either way; `B` or no unit is bytes).
 */
import { totalmem } from "node:os";
import { UsageError } from "../errors";

/** Below this a rank cannot even load TensorFlow.js and its wasm backend: a process rank holds about 200 MiB resident before any cell (bytes). */
export const MIN_RANK_MEMORY_BYTES = 384 * 2 ** 20;

/** Share of the machine's memory the ranks of one group may hold together by default. */
export const DEFAULT_MEMORY_SHARE = 0.75;

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 2 ** 10,
  kb: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mb: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gb: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
};

/** Parses `text` as a size in bytes; `flag` (e.g. `--memory`) and `where` name the culprit in errors. */
export function parseMemorySize(where: string, flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new UsageError(`${where}: ${flag} expects a size such as 4GiB, 512MiB or 1.5G, got '${text}'`, flag);
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (bytes < MIN_RANK_MEMORY_BYTES) {
    throw new UsageError(`${where}: ${flag} must be at least ${formatSize(MIN_RANK_MEMORY_BYTES)} (a rank needs that to load TensorFlow.js), got '${text}'`, flag);
  }
  const machine = machineMemoryBytes();
  if (bytes > machine) {
    throw new UsageError(`${where}: ${flag} ${text} is more than this machine's ${formatSize(machine)} of memory`, flag);
  }
  return bytes;
}

/** The default cap of one rank of `ranks`: a share of the machine's memory split evenly, never below the minimum. */
export function defaultRankMemoryBytes(ranks: number): number {
  return Math.max(MIN_RANK_MEMORY_BYTES, Math.floor((machineMemoryBytes() * DEFAULT_MEMORY_SHARE) / ranks));
}

/** The machine's memory, or the container's limit where one is set (cgroups). */
export function machineMemoryBytes(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const total = totalmem();
  return constrained > 0 && constrained < total ? constrained : total;
}

/** `512 MiB`, `4.00 GiB`. */
export function formatSize(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

