/**
 * One clock for every rank.
 *
 * Worker threads share the process's wall clock: `performance.timeOrigin +
 * performance.now()` is the same epoch in every thread, with sub-microsecond
 * resolution. Processes on this host share it too. Ranks on other hosts have
 * their own clocks; the kernel pings each and estimates the offset NTP-style
 * (estimateClockOffset), then moves that rank's spans onto its own clock.
 */

/**
 * Test hook: `DISTLAB_TEST_CLOCK_SKEW_MS` moves this process's clock (and so
 * its span times and its answers to clock pings) by that many milliseconds,
 * as if its host's clock were off. Rank processes an agent starts inherit it.
 * Only the multi-host clock test sets it.
 */
export const CLOCK_SKEW_ENV = "DISTLAB_TEST_CLOCK_SKEW_MS";

/** The skew the test hook asks for, microseconds; throws a RangeError naming the variable when it is not a number. */
export function testClockSkewUs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[CLOCK_SKEW_ENV];
  if (raw === undefined || raw.trim() === "") return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms)) throw new RangeError(`${CLOCK_SKEW_ENV}=${JSON.stringify(raw)} is not a number of milliseconds (a test hook; e.g. ${CLOCK_SKEW_ENV}=250)`);
  return ms * 1000;
}

/** Read once: every span stamp adds it. A bad value is reported by `distlab agent` at start; here it counts as 0. */
const skewUs = (() => {
  try {
    return typeof process === "object" && process.env ? testClockSkewUs() : 0;
  } catch {
    return 0;
  }
})();

/** Microseconds since the Unix epoch, monotonic within a thread. */
export function epochMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000 + skewUs;
}

/** An epochMicros() stamp as this thread's performance.now() (milliseconds). */
export function epochMicrosToPerformanceMs(us: number): number {
  return (us - skewUs) / 1000 - performance.timeOrigin;
}

/**
 * One ping: the local side sends at `sentUs`, the remote side stamps
 * `remoteReceivedUs` and `remoteSentUs` on its clock, the local side gets the
 * reply at `receivedUs`. All microseconds.
 */
export interface PingSample {
  sentUs: number;
  remoteReceivedUs: number;
  remoteSentUs: number;
  receivedUs: number;
}

export interface ClockOffsetEstimate {
  /** remote clock minus local clock, microseconds: local = remote - offsetUs */
  offsetUs: number;
  /** half the best round trip, microseconds: the true offset lies within offsetUs +- this */
  uncertaintyUs: number;
  /** the best (smallest) round trip without the remote's processing time, microseconds */
  roundTripUs: number;
  /** how many samples were usable */
  samples: number;
}

/**
 * NTP's offset formula on the sample with the smallest round trip: that
 * sample's one-way delays are the least able to be asymmetric, so its error
 * is bounded by half its round trip.
 */
export function estimateClockOffset(samples: readonly PingSample[]): ClockOffsetEstimate {
  let best: { offset: number; roundTrip: number } | undefined;
  let usable = 0;
  for (const s of samples) {
    const roundTrip = s.receivedUs - s.sentUs - (s.remoteSentUs - s.remoteReceivedUs);
    if (!Number.isFinite(roundTrip) || roundTrip < 0 || s.remoteSentUs < s.remoteReceivedUs) continue;
    usable++;
    const offset = (s.remoteReceivedUs - s.sentUs + (s.remoteSentUs - s.receivedUs)) / 2;
    if (best === undefined || roundTrip < best.roundTrip) best = { offset, roundTrip };
  }
  if (best === undefined) {
    throw new RangeError("estimateClockOffset: no usable ping sample (need receivedUs >= sentUs and remoteSentUs >= remoteReceivedUs)");
  }
  return { offsetUs: best.offset, uncertaintyUs: best.roundTrip / 2, roundTripUs: best.roundTrip, samples: usable };
}

/** Moves a remote timestamp onto the local clock. */
export function toLocalClock(remoteUs: number, estimate: Pick<ClockOffsetEstimate, "offsetUs">): number {
  return remoteUs - estimate.offsetUs;
}
