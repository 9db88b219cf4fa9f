/**
 * `%dist hosts`: for each host of a `--hosts` group, its agent's version and
 * hostname, how it was reached, its ranks and GPUs, and the round-trip time
 * and bandwidth of the kernel's link to its agent, measured when the agent
 * was connected (probe messages over the control connection, answered by
 * the agent at once). Rank-to-rank traffic does not cross this link; on one
 * network it is a fair first guess of what the ranks' links do.
 */
import type { RankGroup } from "../cluster/kernel-side/rank-group";
import type { AgentLink } from "./agent-link";
import { CLOCK_REMEASURE_MS, CLOCK_ROUND_TRIPS, formatClockOffset, type HostClockReport } from "./clock-sync";

/** Bytes of the bandwidth probe. */
const BANDWIDTH_PROBE_BYTES = 4 * 2 ** 20;
/** Empty probes whose median is the round trip. */
const ROUND_TRIPS = 5;
/** How long a probe may take before the measurement is given up (milliseconds). */
const PROBE_TIMEOUT_MS = 10_000;

export interface LinkMeasurement {
  /** Median round trip of an empty probe (milliseconds). */
  roundTripMs: number;
  /** BANDWIDTH_PROBE_BYTES over (its round trip less an empty one's), bytes per second. */
  bytesPerSecond: number;
}

export interface HostReport {
  name: string;
  launcher: "agent" | "ssh" | "env";
  agentVersion: string;
  agentHostname: string;
  ranks: number[];
  gpus?: number[];
  link?: LinkMeasurement;
  /** Why the link was not measured. */
  unmeasured?: string;
  /** The agent's clock minus the kernel's (clock-sync.ts). */
  clock?: HostClockReport;
  /** Why the clock offset was not measured. */
  clockUnmeasured?: string;
}

let nextProbe = 1;

/** One probe of `bytes` to the agent and back (milliseconds). Probes use rank -1, which no rank has. */
function probe(link: AgentLink, bytes: number): Promise<number> {
  const id = nextProbe++;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no answer to a probe within ${PROBE_TIMEOUT_MS / 1000} s`));
    }, PROBE_TIMEOUT_MS);
    const stop = link.listen(-1, (message) => {
      if (message.type === "probe-ack" && message.id === id) {
        clearTimeout(timer);
        stop();
        resolve(performance.now() - started);
      } else if (message.type === "exit") {
        clearTimeout(timer);
        stop();
        reject(new Error(message.error ?? "the connection closed"));
      }
    });
    try {
      link.send({ type: "probe", rank: -1, id, payload: new Uint8Array(bytes) });
    } catch (error) {
      clearTimeout(timer);
      stop();
      reject(error as Error);
    }
  });
}

export async function measureLink(link: AgentLink): Promise<LinkMeasurement> {
  const trips: number[] = [];
  for (let index = 0; index < ROUND_TRIPS; index++) trips.push(await probe(link, 0));
  trips.sort((a, b) => a - b);
  const roundTripMs = trips[Math.floor(trips.length / 2)]!;
  const loaded = await probe(link, BANDWIDTH_PROBE_BYTES);
  return { roundTripMs, bytesPerSecond: BANDWIDTH_PROBE_BYTES / (Math.max(loaded - roundTripMs, 0.001) / 1000) };
}

/** What each host group reports, by group (host-group.ts registers it). */
export const hostReports = new WeakMap<RankGroup, () => HostReport[]>();

export function describeHosts(group: RankGroup | undefined): string {
  const report = group ? hostReports.get(group) : undefined;
  if (!group || !report) return "no --hosts group running; %dist hosts describes the hosts of a %%distributed --hosts group\n";
  const hosts = report();
  if (hosts.length === 0) return "the group's hosts are reached when its first cell runs\n";
  const lines = hosts.map((host) => {
    const ranks = `rank${host.ranks.length === 1 ? "" : "s"} ${host.ranks.length === 0 ? "none" : host.ranks.join(", ")}`;
    const gpus = host.gpus ? `GPUs ${host.gpus.join(",")}` : "GPUs none given";
    const link = host.link
      ? `round trip ${host.link.roundTripMs.toFixed(2)} ms, link ${formatRate(host.link.bytesPerSecond)}`
      : `link not measured (${host.unmeasured ?? "not connected"})`;
    const clock = host.clock
      ? `clock offset ${formatClockOffset(host.clock.estimate)} (${host.clock.measurements} measurement${host.clock.measurements === 1 ? "" : "s"}, drift ${host.clock.driftPpm.toFixed(1)} ppm)`
      : `clock offset not measured (${host.clockUnmeasured ?? "not connected"})`;
    return `  ${host.name}: agent distlab ${host.agentVersion} on ${host.agentHostname} (${host.launcher === "ssh" ? "started through ssh" : host.launcher === "env" ? "dialled in" : "running agent"}); ${ranks}; ${gpus}; ${link}\n    ${clock}`;
  });
  return `hosts (link: kernel <-> agent, measured at group start; clock offset: agent's clock minus the kernel's, best of ${CLOCK_ROUND_TRIPS} pings, re-measured every ${CLOCK_REMEASURE_MS / 1000} s; the timeline is on the kernel's clock):\n${lines.join("\n")}\n`;
}

function formatRate(bytesPerSecond: number): string {
  const mib = bytesPerSecond / 2 ** 20;
  return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB/s` : `${mib.toFixed(1)} MiB/s`;
}
