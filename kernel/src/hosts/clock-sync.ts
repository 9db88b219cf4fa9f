/**
 * One clock for a multi-host group: each agent's clock offset to the kernel's,
 * measured NTP-style over the control connection.
 *
 * A measurement is CLOCK_ROUND_TRIPS clock pings in a row; the agent stamps
 * each on arrival and on answer (agent.ts), and estimateClockOffset keeps the
 * sample with the smallest round trip: offset = ((t1 - t0) + (t2 - t3)) / 2,
 * uncertainty = that round trip / 2. The first measurement runs when the agent
 * is connected (before any rank starts); then every CLOCK_REMEASURE_MS while
 * the group is open, whether a cell runs or not. Drift is corrected by taking
 * the latest estimate, unless its uncertainty is over twice the best so far
 * (and over 1 ms): a re-measurement that met a busy link (a large value pushed
 * on the control connection) keeps the previous, tighter one. Spans posted
 * after a re-measurement use the estimate kept (over 30 s
 * a quartz clock drifts by a few microseconds, well inside the uncertainty on
 * a LAN, so a fitted slope would buy nothing measurable). The drift between
 * the first and the latest estimate is kept for `%dist hosts`.
 */
import type { RankGroup } from "../cluster/kernel-side/rank-group";
import { epochMicros, estimateClockOffset, type ClockOffsetEstimate, type PingSample } from "../trace/clock";
import type { AgentLink } from "./agent-link";

/** Pings per measurement. */
export const CLOCK_ROUND_TRIPS = 16;
/** Milliseconds between measurements of an open group. */
export const CLOCK_REMEASURE_MS = 30_000;
/** How long one ping may go unanswered before the measurement is given up (milliseconds). */
const CLOCK_PING_TIMEOUT_MS = 10_000;
/** The control connection routes answers by rank; clock pings use one no rank (nor the link probes, -1) has. */
const CLOCK_RANK = -2;

/** An estimate this uncertain (microseconds) or better is always taken, however good earlier ones were. */
const LOOSE_UNCERTAINTY_US = 1000;

let nextPing = 1;

/** One clock ping: the four NTP timestamps, epoch microseconds (t0, t3 on the kernel's clock; t1, t2 on the agent's). */
function ping(link: AgentLink): Promise<PingSample> {
  const id = nextPing++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no answer to a clock ping within ${CLOCK_PING_TIMEOUT_MS / 1000} s`));
    }, CLOCK_PING_TIMEOUT_MS);
    const stop = link.listen(CLOCK_RANK, (message) => {
      if (message.type === "clock-ack" && message.id === id) {
        const receivedUs = epochMicros();
        clearTimeout(timer);
        stop();
        resolve({ sentUs, remoteReceivedUs: message.receivedUs, remoteSentUs: message.sentUs, receivedUs });
      } else if (message.type === "exit") {
        clearTimeout(timer);
        stop();
        reject(new Error(message.error ?? "the connection closed"));
      }
    });
    const sentUs = epochMicros();
    try {
      link.send({ type: "clock", rank: CLOCK_RANK, id });
    } catch (error) {
      clearTimeout(timer);
      stop();
      reject(error as Error);
    }
  });
}

/** The agent's clock minus the kernel's, from `roundTrips` pings in a row. */
export async function measureClockOffset(link: AgentLink, roundTrips = CLOCK_ROUND_TRIPS): Promise<ClockOffsetEstimate> {
  const samples: PingSample[] = [];
  for (let index = 0; index < roundTrips; index++) samples.push(await ping(link));
  return estimateClockOffset(samples);
}

export interface HostClockReport {
  estimate: ClockOffsetEstimate;
  /** Measurements so far (1 at group start), including any not kept for being looser than the best. */
  measurements: number;
  /** Latest offset minus the first, over the time between them: microseconds per second (= ppm); 0 after one. */
  driftPpm: number;
}

/** One agent's clock offset, measured now and every CLOCK_REMEASURE_MS until the link closes or `stop()`. */
export class HostClock {
  private first: { estimate: ClockOffsetEstimate; atUs: number } | undefined;
  private latest: { estimate: ClockOffsetEstimate; atUs: number } | undefined;
  private measurements = 0;
  /** The smallest uncertainty of any measurement so far, microseconds. */
  private bestUncertaintyUs = Number.POSITIVE_INFINITY;
  private timer: ReturnType<typeof setInterval> | undefined;
  private running = false;
  /** Why the last measurement failed, if it did. */
  failure: string | undefined;

  constructor(private readonly link: AgentLink, private readonly remeasureMs = CLOCK_REMEASURE_MS) {}

  /** Measures once (resolves when done, never rejects), then keeps re-measuring in the background. */
  async start(): Promise<void> {
    await this.measure();
    this.timer ??= setInterval(() => {
      if (this.link.closed) this.stop();
      else void this.measure();
    }, this.remeasureMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  get estimate(): ClockOffsetEstimate | undefined {
    return this.latest?.estimate;
  }

  report(): HostClockReport | undefined {
    if (this.latest === undefined || this.first === undefined) return undefined;
    const seconds = (this.latest.atUs - this.first.atUs) / 1e6;
    const driftPpm = seconds > 0 ? (this.latest.estimate.offsetUs - this.first.estimate.offsetUs) / seconds : 0;
    return { estimate: this.latest.estimate, measurements: this.measurements, driftPpm };
  }

  private async measure(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const estimate = await measureClockOffset(this.link);
      const atUs = epochMicros();
      this.measurements++;
      this.bestUncertaintyUs = Math.min(this.bestUncertaintyUs, estimate.uncertaintyUs);
      if (this.latest === undefined || estimate.uncertaintyUs <= Math.max(2 * this.bestUncertaintyUs, LOOSE_UNCERTAINTY_US)) {
        this.latest = { estimate, atUs };
        this.first ??= this.latest;
      }
      this.failure = undefined;
    } catch (error) {
      this.failure = (error as Error).message;
    } finally {
      this.running = false;
    }
  }
}

/** Each host group's clock offset of a rank's host (host-group.ts registers it; the timeline reads it). */
export const rankClocks = new WeakMap<RankGroup, (rank: number) => ClockOffsetEstimate | undefined>();

/** "+250.03 ms +- 0.04 ms": an offset and its uncertainty for people. */
export function formatClockOffset(estimate: Pick<ClockOffsetEstimate, "offsetUs" | "uncertaintyUs">): string {
  const sign = estimate.offsetUs >= 0 ? "+" : "-";
  return `${sign}${(Math.abs(estimate.offsetUs) / 1000).toFixed(3)} ms ± ${(estimate.uncertaintyUs / 1000).toFixed(3)} ms`;
}
