/**
 * One clock for every rank.
 *
 * Worker threads share the process's wall clock: `performance.timeOrigin +
 * performance.now()` is the same epoch in every thread, with sub-microsecond
 * resolution. Processes on this host share it too. Ranks on other hosts have
 * their own clocks; the kernel pings each and estimates the offset NTP-style
 * (estimateClockOffset), then moves that rank's spans onto its own clock.
 */

/** Microseconds since the Unix epoch, monotonic within a thread. */
export function epochMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
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
