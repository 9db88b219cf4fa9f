// Link emulation for teaching: a message of S bytes over a link of bandwidth
// B (bytes/s) and latency L (s) is fully delivered L + S/B after its send
// starts, when it has the sender's NIC to itself. The sender paces itself:
// nothing leaves before L, then bytes leave at rate B, and all of a rank's
// concurrent sends share that rate (Nic: one egress per rank). Pacing on the
// sender needs no clock shared with the receiver, so it works across hosts.
// Ingress (a rank receiving from k peers at once gets bandwidth B in all) is
// modelled where the ranks share memory (shm: SharedIngress); over tcp only
// each sender's egress is limited.
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
 * Bytes reserved on the egress at a time: the grain the pacers interleave in
 * (1 ms of the link, 4 KiB .. 1 MiB, a multiple of 16 bytes), so concurrent sends share the
 * bandwidth finely while wake-ups stay few.
 */
function grainBytes(bandwidth: number): number {
  // A multiple of 16: the shm channels move payload in 16-byte pieces, and a grain they cannot send
  // whole would look like back-pressure to the sender (nextDueMs: Infinity) until the next doorbell.
  return Math.max(4096, Math.min(1024 * 1024, Math.floor(bandwidth * 0.001))) & ~15;
}

/**
 * How far into the past a grain may be placed, milliseconds: a sender woken
 * a little late (a busy machine) still gets its bytes at the link's rate
 * instead of losing the time, but an idle egress banks nothing beyond this.
 */
const CATCH_UP_MS = 2;

/**
 * One rank's network interface, as the link emulation sees it: every send
 * of the rank, to any peer, takes its bytes from the same egress, so a rank
 * sending S to k peers at once needs k S / bandwidth, as through one NIC.
 * With `ingress` (shm worlds), each grain also takes its time on the
 * receiver's ingress, so k ranks sending to one at once need k S / bandwidth
 * too. Grains are placed first come, first served on a virtual timeline
 * (performance.now() milliseconds); a grain waits for the later of the
 * sender's egress and the receiver's ingress, which is exact when only one
 * side is contended (fan-out, fan-in, rings) and errs slow when both are
 * (all-to-all). Latency is per message and not shared: it is the wire's
 * propagation, during which the egress is free.
 */
export class Nic {
  /** when the egress has sent every byte reserved so far */
  private freeAtMs = -Infinity;

  constructor(private readonly ingress?: SharedIngress) {}

  /**
   * Reserves `bytes` to world rank `peer` at `bandwidth` bytes/s, not before `notBeforeMs`; returns when they have left.
   * `followsMs`: the end of the same message's previous grain. A message in flight keeps its place on the wire however
   * late its sender wakes (a loaded machine wakes threads milliseconds late, every grain); only a message's first grain
   * is held to `nowMs - CATCH_UP_MS`, so that an idle egress banks nothing.
   */
  reserve(bytes: number, bandwidth: number, notBeforeMs: number, nowMs: number, peer: number, followsMs?: number): number {
    const earliest = Math.max(notBeforeMs, this.freeAtMs, followsMs ?? nowMs - CATCH_UP_MS);
    const durationMs = (bytes / bandwidth) * 1000;
    this.freeAtMs = this.ingress ? this.ingress.reserve(peer, earliest, durationMs) : earliest + durationMs;
    return this.freeAtMs;
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
 * payload leaves grain by grain as the Nic gives each grain its time.
 */
export class Pacer {
  /** payload bytes whose time on the egress has passed */
  private released = 0;
  /** what allowed() last answered: bytes beyond it were released after the sender last looked */
  private told = 0;
  /** the grain reserved on the Nic and not yet released */
  private pending?: { bytes: number; endMs: number };
  private readonly firstByteMs: number;
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
    this.grain = Number.isFinite(link.bandwidth) ? grainBytes(link.bandwidth) : Math.max(1, totalBytes);
  }

  /** Payload bytes allowed out by `nowMs` (performance.now() milliseconds); -1 while the latency runs (not even the header). */
  allowed(nowMs: number): number {
    if (nowMs < this.firstByteMs) return -1;
    this.advance(nowMs);
    this.told = this.released;
    return this.released;
  }

  /**
   * Milliseconds from `nowMs` until more than `sent` payload bytes may have
   * left: the end of the latency or of the grain reserved; 0 when bytes
   * were released since allowed() last answered; Infinity when more is
   * already allowed and the sender knows it (what holds the send back is
   * not the link) or everything is.
   */
  nextDueMs(sent: number, nowMs: number): number {
    if (nowMs < this.firstByteMs) return this.firstByteMs - nowMs;
    this.advance(nowMs);
    // Bytes released since the sender last asked (its clock reading came before this one): due now.
    if (this.released > this.told) return 0;
    if (this.released > sent || !this.pending) return Infinity;
    return Math.max(0, this.pending.endMs - nowMs);
  }

  /** Resolves once `bytes` of the payload may have left. */
  async whenAllowed(bytes: number): Promise<void> {
    const target = Math.min(bytes, this.totalBytes);
    for (;;) {
      const now = performance.now();
      if (this.allowed(now) >= target) return;
      await new Promise((resolve) => setTimeout(resolve, now < this.firstByteMs ? this.firstByteMs - now : Math.max(0, this.pending!.endMs - now)));
    }
  }

  /** Releases grains whose time has passed and reserves the next one. */
  private advance(nowMs: number): void {
    for (;;) {
      let followsMs: number | undefined;
      if (this.pending) {
        if (nowMs < this.pending.endMs) return;
        this.released += this.pending.bytes;
        followsMs = this.pending.endMs;
        this.pending = undefined;
      }
      const left = this.totalBytes - this.released;
      if (left <= 0) return;
      const bytes = Math.min(left, this.grain);
      this.pending = { bytes, endMs: this.nic.reserve(bytes, this.link.bandwidth, this.firstByteMs, nowMs, this.peer, followsMs) };
    }
  }
}
