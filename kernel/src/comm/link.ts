// Link emulation for teaching: a message of S bytes over a link of bandwidth
// B (bytes/s) and latency L (s) is fully delivered L + S/B after its send
// starts, when it has the sender's NIC to itself. The sender paces itself:
// nothing leaves before L, then bytes leave at rate B, and all of a rank's
// concurrent sends share that rate (Nic: one egress per rank). Pacing on the
// sender needs no clock shared with the receiver, so it works across hosts.
// Ingress (a rank receiving from k peers at once gets bandwidth B in all) is
// modelled where the ranks share memory by the senders (shm: SharedIngress),
// and over tcp by the receiver, which holds what arrived faster (tcp-ingress.ts).
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

/**
 * One rank's network interface, as the link emulation sees it: every send
 * of the rank, to any peer, takes its time from the same egress, so a rank
 * sending S to k peers at once needs k S / bandwidth, as through one NIC.
 * With `ingress` (shm worlds), a message also takes its time on the
 * receiver's ingress, so k ranks sending to one at once need k S / bandwidth
 * too. A message reserves its whole transfer when it starts, first come,
 * first served (one queue, as a NIC's): it waits for the later of the
 * sender's egress and the receiver's ingress, which is exact when only one
 * side is contended (fan-out, fan-in, rings) and errs slow when both are
 * (all-to-all). Reserving the whole message, not grain by grain, makes the
 * bytes allowed out a function of time alone: a sender that wakes late on a
 * busy machine sends what it owes at once instead of losing the time.
 * Latency is per message and not shared: it is the wire's propagation,
 * during which the egress is free.
 */
export class Nic {
  /** when the egress has sent every byte reserved so far, performance.now() milliseconds */
  private freeAtMs = -Infinity;

  constructor(private readonly ingress?: SharedIngress) {}

  /**
   * Reserves `bytes` to world rank `peer` at `bandwidth` bytes/s, not before
   * `notBeforeMs`; returns the interval they leave in (performance.now() ms).
   */
  reserve(bytes: number, bandwidth: number, notBeforeMs: number, peer: number): { beginMs: number; endMs: number } {
    const earliest = Math.max(notBeforeMs, this.freeAtMs);
    const durationMs = (bytes / bandwidth) * 1000;
    this.freeAtMs = this.ingress ? this.ingress.reserve(peer, earliest, durationMs) : earliest + durationMs;
    return { beginMs: this.freeAtMs - durationMs, endMs: this.freeAtMs };
  }
}

/**
 * Every rank's ingress in a shm world: when each rank's ingress is free
 * again, as BigInt64 microseconds since the Unix epoch (a clock all threads
 * of the process share), in a SharedArrayBuffer every rank holds. Senders
 * claim time on it with compare-and-swap.
 */
export class SharedIngress {
  private readonly freeAtUs: BigInt64Array;

  constructor(buffer: SharedArrayBuffer, size: number) {
    this.freeAtUs = new BigInt64Array(buffer);
    if (this.freeAtUs.length < size) throw new RangeError(`SharedIngress: buffer holds ${this.freeAtUs.length} clocks, a world of ${size} ranks needs ${size}`);
  }

  static createBuffer(size: number): SharedArrayBuffer {
    return new SharedArrayBuffer(size * 8);
  }

  /** Claims `durationMs` of `peer`'s ingress from `earliestMs` (this thread's performance.now()) or later; returns its end, same clock. */
  reserve(peer: number, earliestMs: number, durationMs: number): number {
    const origin = performance.timeOrigin;
    for (;;) {
      const current = Atomics.load(this.freeAtUs, peer);
      const beginUs = Math.max((origin + earliestMs) * 1000, Number(current));
      const endUs = BigInt(Math.ceil(beginUs + durationMs * 1000));
      if (Atomics.compareExchange(this.freeAtUs, peer, current, endUs) === current) return Number(endUs) / 1000 - origin;
    }
  }
}

/**
 * Paces one message of `totalBytes` payload bytes over `link`, through the
 * sending rank's Nic: nothing leaves before the latency is over, then the
 * payload leaves at the link's rate during the interval the Nic gave it.
 */
export class Pacer {
  private readonly firstByteMs: number;
  /** what allowed() last answered the sender */
  private told = -1;
  /** when the payload leaves, performance.now() milliseconds; reserved at the first byte's time */
  private window?: { beginMs: number; endMs: number };
  /** bytes per wake-up: 1 ms of the link, 4 KiB .. 1 MiB (a multiple of 16), so wake-ups stay few */
  private readonly grain: number;

  constructor(
    private readonly link: LinkModel,
    private readonly totalBytes: number,
    private readonly nic: Nic,
    startMs: number,
    /** world rank the message goes to */
    private readonly peer: number,
  ) {
    this.firstByteMs = startMs + link.latency * 1000;
    this.grain = Number.isFinite(link.bandwidth) ? Math.max(4096, Math.min(1024 * 1024, Math.floor(link.bandwidth * 0.0000625) * 16)) : Math.max(1, totalBytes);
  }

  /**
   * Payload bytes allowed out by `nowMs` (performance.now() milliseconds); -1 while the latency runs
   * (not even the header). Released a grain at a time (a multiple of 16 bytes: shm channels move
   * payload in 16-byte pieces), so a sender wakes once a grain, not for every few bytes.
   */
  allowed(nowMs: number): number {
    this.told = this.allowedAt(nowMs);
    return this.told;
  }

  /**
   * Milliseconds from `nowMs` until more than `sent` payload bytes may have
   * left (the next grain); 0 when a grain was released since the sender
   * last asked allowed(); Infinity when more is allowed and the sender knows
   * it (what holds the send back is not the link) or everything is.
   */
  nextDueMs(sent: number, nowMs: number): number {
    if (nowMs < this.firstByteMs) return this.firstByteMs - nowMs;
    const allowed = this.allowedAt(nowMs);
    if (allowed > this.told) return 0;
    if (allowed > sent || sent >= this.totalBytes) return Infinity;
    return Math.max(0, this.timeAllowed(allowed + 1) - nowMs);
  }

  /** Resolves once `bytes` of the payload may have left. */
  async whenAllowed(bytes: number): Promise<void> {
    const target = Math.min(bytes, this.totalBytes);
    for (;;) {
      const now = performance.now();
      if (this.allowed(now) >= target) return;
      const at = now < this.firstByteMs ? this.firstByteMs : this.timeAllowed(target);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - now)));
    }
  }

  private allowedAt(nowMs: number): number {
    if (nowMs < this.firstByteMs) return -1;
    const { beginMs, endMs } = this.reserved();
    if (nowMs >= endMs) return this.totalBytes;
    if (nowMs <= beginMs) return 0;
    const bytes = (this.totalBytes * (nowMs - beginMs)) / (endMs - beginMs);
    return Math.floor(bytes / this.grain) * this.grain;
  }

  /** When at least `bytes` of the payload are allowed out: the end of the grain holding byte `bytes` (performance.now() ms). */
  private timeAllowed(bytes: number): number {
    const { beginMs, endMs } = this.reserved();
    const released = Math.ceil(bytes / this.grain) * this.grain;
    if (released >= this.totalBytes) return endMs;
    return beginMs + ((endMs - beginMs) * released) / this.totalBytes + 1e-6; // past the boundary despite rounding
  }

  private reserved(): { beginMs: number; endMs: number } {
    this.window ??= this.nic.reserve(this.totalBytes, this.link.bandwidth, this.firstByteMs, this.peer);
    return this.window;
  }
}
