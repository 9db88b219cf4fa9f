// Link emulation for teaching: a message of S bytes over a link of bandwidth
// B (bytes/s) and latency L (s) is fully delivered L + S/B after its send
// starts. The sender paces itself: nothing leaves before L, then bytes leave
// at rate B. Pacing on the sender needs no clock shared with the receiver, so
// it works across hosts.
import type { LinkModel } from "./types";

/** Bandwidth units, bytes per second each ("/s" may follow: 1Gbit/s). */
const BANDWIDTH_UNITS: Record<string, number> = {
  bit: 1 / 8, kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8, tbit: 1e12 / 8,
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};
/** Latency units, seconds each. */
const LATENCY_UNITS: Record<string, number> = { s: 1, ms: 1e-3, us: 1e-6 };

/** Sane bounds: slower than 1 kbit/s or later than 10 s is a typo, not a link worth emulating. */
export const MIN_BANDWIDTH = 1e3 / 8; // bytes/s (1 kbit/s)
export const MAX_BANDWIDTH = 10e12 / 8; // bytes/s (10 Tbit/s)
export const MAX_LATENCY = 10; // seconds

export const LINK_FORMS =
  "accepted: bandwidth=<number><unit> with unit bit, kbit, Mbit, Gbit, Tbit, B, kB, MB, GB, KiB, MiB or GiB " +
  `(per second, "/s" optional; no unit: bytes/s), between 1kbit and 10Tbit; latency=<number><unit> with unit s, ms or us ` +
  "(no unit: seconds), between 0 and 10s; each key at most once, e.g. bandwidth=1Gbit,latency=2ms";

/** Parses `bandwidth=1Gbit,latency=2ms`; a bad part throws naming it, with the accepted forms. */
export function parseLink(spec: string): LinkModel {
  const given: Partial<LinkModel> = {};
  const fail = (what: string) => new RangeError(`--link: ${what}; ${LINK_FORMS}`);
  for (const part of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq < 0) throw fail(`cannot read "${part}" (expected key=value)`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key !== "bandwidth" && key !== "latency") throw fail(`unknown key "${key}" in "${part}"; keys are bandwidth and latency`);
    if (given[key] !== undefined) throw fail(`${key} given twice ("${part}")`);
    const m = /^([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?)\s*([a-zA-Z]*)(\/s)?$/i.exec(value);
    if (!m) throw fail(`cannot read ${key} "${value}" as a number and unit`);
    const num = Number(m[1]);
    const unit = m[2]!.toLowerCase();
    if (key === "bandwidth") {
      const scale = BANDWIDTH_UNITS[unit || "b"];
      if (scale === undefined) throw fail(`unknown bandwidth unit "${m[2]}" in "${part}"`);
      given.bandwidth = num * scale;
      checkBandwidth(given.bandwidth, `bandwidth "${value}"`, fail);
    } else {
      if (m[3]) throw fail(`latency "${value}" is a time, not a rate`);
      const scale = unit === "" ? 1 : LATENCY_UNITS[unit];
      if (scale === undefined) throw fail(`unknown latency unit "${m[2]}" in "${part}"`);
      given.latency = num * scale;
      checkLatency(given.latency, `latency "${value}"`, fail);
    }
  }
  if (given.bandwidth === undefined && given.latency === undefined) throw fail(`"${spec}" gives neither bandwidth nor latency`);
  return { bandwidth: given.bandwidth ?? Infinity, latency: given.latency ?? 0 };
}

/** A LinkModel given in code (options.link): the same bounds; Infinity bandwidth means latency only. */
export function checkLink(link: LinkModel, where: string): LinkModel {
  const fail = (what: string) => new RangeError(`${where}: ${what}`);
  if (link.bandwidth !== Infinity) checkBandwidth(link.bandwidth, `bandwidth ${link.bandwidth} bytes/s`, fail);
  checkLatency(link.latency, `latency ${link.latency} s`, fail);
  return link;
}

function checkBandwidth(bytesPerSecond: number, what: string, fail: (what: string) => Error): void {
  if (!(bytesPerSecond > 0)) throw fail(`${what} must be > 0`);
  if (bytesPerSecond < MIN_BANDWIDTH) throw fail(`${what} is below 1 kbit/s (${MIN_BANDWIDTH} bytes/s)`);
  if (!(bytesPerSecond <= MAX_BANDWIDTH)) throw fail(`${what} is above 10 Tbit/s (${MAX_BANDWIDTH} bytes/s)`);
}

function checkLatency(seconds: number, what: string, fail: (what: string) => Error): void {
  if (!(seconds >= 0)) throw fail(`${what} must be >= 0`);
  if (!(seconds <= MAX_LATENCY)) throw fail(`${what} is above ${MAX_LATENCY} s`);
}

/** Paces one message: how many bytes may have left by a given time. */
export class Pacer {
  private startMs = -1;
  constructor(
    private readonly link: LinkModel,
    private readonly totalBytes: number,
  ) {}

  /** Bytes allowed out by `nowMs` (performance.now() milliseconds). */
  allowed(nowMs: number): number {
    if (this.startMs < 0) this.startMs = nowMs;
    const sinceMs = nowMs - this.startMs - this.link.latency * 1000;
    if (sinceMs < 0) return -1; // not even the header yet
    return Math.min(this.totalBytes, Math.floor((sinceMs / 1000) * this.link.bandwidth));
  }

  /**
   * Milliseconds from `nowMs` until more can leave, given `sent` payload
   * bytes already out: the end of the latency, or the next grain of bytes
   * (0.2 ms worth, at least 4 KiB) so that wakeups stay few.
   */
  nextDueMs(sent: number, nowMs: number): number {
    if (this.startMs < 0) this.startMs = nowMs;
    const grain = Math.max(4096, this.link.bandwidth * 0.0002);
    const target = Math.min(this.totalBytes, sent + grain);
    const at = this.startMs + this.link.latency * 1000 + (target / this.link.bandwidth) * 1000;
    return Math.max(0, at - nowMs);
  }

  /** Milliseconds from `nowMs` until `bytes` of the payload may have left (0 when already). */
  msUntilAllowed(bytes: number, nowMs: number): number {
    if (this.startMs < 0) this.startMs = nowMs;
    const at = this.startMs + this.link.latency * 1000 + (Math.min(bytes, this.totalBytes) / this.link.bandwidth) * 1000;
    return Math.max(0, at - nowMs);
  }
}
