// Link emulation for teaching: a message of S bytes over a link of bandwidth
// B (bytes/s) and latency L (s) is fully delivered L + S/B after its send
// starts. The sender paces itself: nothing leaves before L, then bytes leave
// at rate B. Pacing on the sender needs no clock shared with the receiver, so
// it works across hosts.
import type { LinkModel } from "./types";

const UNITS: Record<string, number> = {
  bit: 1 / 8, kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8,
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};

/** Parses `bandwidth=1Gbit,latency=2ms` (bandwidth units bit..Gbit, B..GiB per second; latency s|ms|us). */
export function parseLink(spec: string): LinkModel {
  let bandwidth = Infinity;
  let latency = 0;
  for (const part of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, value] = part.split("=").map((s) => s.trim());
    const m = /^([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)(?:\/s)?$/.exec(value ?? "");
    if (!m) throw new TypeError(`--link: cannot read "${part}"; expected e.g. bandwidth=1Gbit,latency=2ms`);
    const num = Number(m[1]);
    const unit = m[2].toLowerCase();
    if (key === "bandwidth") {
      const scale = UNITS[unit || "b"];
      if (scale === undefined) throw new TypeError(`--link: unknown bandwidth unit "${m[2]}" in "${part}"`);
      bandwidth = num * scale;
    } else if (key === "latency") {
      const scale = { s: 1, ms: 1e-3, us: 1e-6, "": 1 }[unit];
      if (scale === undefined) throw new TypeError(`--link: unknown latency unit "${m[2]}" in "${part}"`);
      latency = num * scale;
    } else {
      throw new TypeError(`--link: unknown key "${key}"; expected bandwidth or latency`);
    }
  }
  return checkLink({ bandwidth, latency }, "--link");
}

export function checkLink(link: LinkModel, where: string): LinkModel {
  if (!(link.bandwidth > 0)) throw new RangeError(`${where}: bandwidth must be > 0 bytes/s, got ${link.bandwidth}`);
  if (!(link.latency >= 0) || !Number.isFinite(link.latency))
    throw new RangeError(`${where}: latency must be >= 0 seconds, got ${link.latency}`);
  return link;
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
   * (1 ms worth, at least 4 KiB, as tcp writes them) so that wakeups stay few:
   * a thread that sends while other threads compute (a rank's comm thread)
   * preempts them at every wakeup.
   */
  nextDueMs(sent: number, nowMs: number): number {
    if (this.startMs < 0) this.startMs = nowMs;
    const grain = Math.max(4096, this.link.bandwidth * 0.001);
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
