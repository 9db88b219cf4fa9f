/**
 * `--backend hosts`: the ranks run on agents (agent.ts) of other machines,
 * as process ranks (the processes backend's ProcessRank over a
 * RemoteRankChild). The agents are dialled and authenticated when the group
 * first prepares, which is also when `--hosts` entries without `slots=`
 * learn their agent's slots and each rank learns its host. The ranks' TCP
 * world is formed at a rendezvous this kernel runs on the address it
 * reached the first agent from; data then flows rank to rank.
 *
 * With `--launcher env` there are no entries: the agents dial this kernel's
 * rendezvous (rendezvous.ts), each announcing its index; ranks fill their
 * slots in index order, and an agent whose connection ended is waited for
 * (it must dial in again) rather than redialled.
 */
import { createTcpKernelWorld } from "../cluster/comm-world";
import { ProcessRank } from "../cluster/backends/processes/process-rank-handle";
import type { GroupShape, RankEvent } from "../cluster/rank-messages";
import { RankGroup } from "../cluster/kernel-side/rank-group";
import { AgentLink, agentSilenceFor, type AgentTls } from "./agent-link";
import { assignRanks, entryName, HostsError, launcherOf, type HostEntry, type LauncherName } from "./host-spec";
import { RemoteRankChild } from "./remote-rank";
import { launchOverSsh } from "./ssh-launcher";
import { KernelDataRelay } from "./data-relay";
import { createAgentTcpWorld } from "./agent-rendezvous";
import { hostReports, measureLink, type LinkMeasurement } from "./host-report";
import type { Rendezvous } from "./rendezvous";
import { HostClock, rankClocks } from "./clock-sync";
import type { PrepareContext } from "../cluster/kernel-side/rank-group";

export interface HostGroupOptions {
  entries: readonly HostEntry[];
  launcher: LauncherName;
  /** The token of running agents (--token-file); agents started through ssh get a fresh one each. */
  token?: Buffer;
  /** `ssh -F FILE` for the ssh launcher. */
  sshConfig?: string;
  /** What runs distlab on hosts the ssh launcher reaches. */
  agentCommand: string;
  /** TLS to running agents (the ssh launcher's agents talk over the ssh channel instead). */
  tls?: AgentTls;
  /** TLS on the ranks' data connections between hosts (comm/data-tls.ts). */
  dataTls?: boolean;
  version: string;
  /** `--ssh-tunnel`: the ranks' rendezvous runs on the first agent's host, not in this kernel (agent-rendezvous.ts). */
  sshTunnel?: boolean;
  /** `--data-via ssh`: the ranks' connections between hosts ride the agents' ssh sessions (data-relay.ts). */
  dataViaSsh?: boolean;
  /** `--launcher env`: the agents dial in here instead (entries is empty). */
  rendezvous?: RendezvousSource;
}

/** Where agents of `--launcher env` dial in, opened on the group's first prepare and closed with it. */
export interface RendezvousSource {
  open(): Promise<Rendezvous>;
  /** How long a prepare waits for the agents (milliseconds). */
  timeoutMs: number;
}

export function createHostGroup(shape: GroupShape, onEvent: (rank: number, event: RankEvent) => void, options: HostGroupOptions): RankGroup {
  let links: AgentLink[] = [];
  /** Each link's round trip and bandwidth, measured when it was connected (or why not). */
  const measured = new Map<AgentLink, LinkMeasurement | string>();
  /** Each link's clock offset (clock-sync.ts), measured after the link so the bandwidth probe does not delay its pings. */
  const clocks = new Map<AgentLink, HostClock>();
  const measure = async (link: AgentLink) => {
    await measureLink(link).then(
      (result) => measured.set(link, result),
      (error: unknown) => measured.set(link, (error as Error).message),
    );
    const clock = new HostClock(link);
    clocks.set(link, clock);
    await clock.start();
  };
  /** Host index of each rank, once the agents answered. */
  let hostOf: number[] = [];
  const names = options.entries.map(entryName);
  /** The GPU of each rank whose host's hostfile line says gpus=: the host's list, one a rank in order. */
  const gpuOf = (rank: number): number | undefined => {
    const entry = options.entries[hostOf[rank]!];
    if (entry === undefined) return undefined;
    return entry.gpus?.[hostOf.slice(0, rank).filter((host) => host === hostOf[rank]).length];
  };
  const ranks = Array.from({ length: shape.size }, (_, rank) => {
    const info = { rank, size: shape.size, host: "(not connected)", memoryCapBytes: shape.memoryCapBytes, ...(shape.tfBackend ? { tfBackend: shape.tfBackend } : {}) };
    return new ProcessRank(info, onEvent, (env) => new RemoteRankChild(links[hostOf[rank]!]!, rank, env, gpuOf(rank)));
  });

  /** `--data-via ssh`: the relay the hosts' ranks reach each other through, started with the first dial. */
  let relay: Promise<KernelDataRelay> | undefined;
  const dial = async (entry: HostEntry): Promise<AgentLink> => {
    if (launcherOf(entry, options.launcher) === "ssh" && options.dataViaSsh === true) {
      relay ??= KernelDataRelay.start((line) => process.stderr.write(`distlab: ${line}\n`));
      const forwards = (await relay).forwards();
      const link = await launchOverSsh({
        destination: `${entry.user === undefined ? "" : `${entry.user}@`}${entry.host}`,
        ...(entry.portGiven ? { port: entry.port } : {}),
        ...(options.sshConfig === undefined ? {} : { sshConfig: options.sshConfig }),
        ...(entry.slots === undefined ? {} : { slots: entry.slots }),
        agentCommand: options.agentCommand,
        version: options.version,
        dataRelay: forwards,
      });
      if (link.agentAddress === undefined) {
        link.close();
        throw new HostsError(`--data-via ssh: the agent on ${entryName(entry)} did not say which address its ranks listen on`);
      }
      (await relay).addHost(link.agentAddress, forwards.kernelInbound);
      return link;
    }
    if (launcherOf(entry, options.launcher) === "ssh") {
      return launchOverSsh({
        destination: `${entry.user === undefined ? "" : `${entry.user}@`}${entry.host}`,
        ...(entry.portGiven ? { port: entry.port } : {}),
        ...(options.sshConfig === undefined ? {} : { sshConfig: options.sshConfig }),
        ...(entry.slots === undefined ? {} : { slots: entry.slots }),
        agentCommand: options.agentCommand,
        version: options.version,
      });
    }
    if (options.token === undefined) throw new HostsError(`--hosts ${names[options.entries.indexOf(entry)]}: an agent reached at its port needs --token-file`);
    return AgentLink.connect({ host: entry.host, port: entry.port, token: options.token, version: options.version, ...(options.tls ? { tls: options.tls } : {}) });
  };

  let rendezvous: Rendezvous | undefined;
  /** `--launcher env`: waits for every agent to dial in; the first time, lays the ranks out in the agents' index order. */
  const gather = async (context: PrepareContext): Promise<string[]> => {
    const lostBefore = links.flatMap((link, index) => (link.closed ? [index] : []));
    // Every agent still connected: nothing to wait for, nothing to show under the cell.
    if (links.length > 0 && lostBefore.length === 0) return [];
    rendezvous ??= await options.rendezvous!.open();
    // this cell's --rendezvous-timeout when it names one (a later cell may wait longer for an agent to come back)
    const gathered = await rendezvous.gather(context.rendezvousTimeoutMs ?? options.rendezvous!.timeoutMs, context.interrupt, context.progress);
    if (links.length === 0) {
      names.splice(0, names.length, ...gathered.map((link, index) => `${link.hostname} (agent ${index})`));
      hostOf = assignRanks(shape.size, gathered.map((link) => link.slots), names);
      links = gathered;
      ranks.forEach((rank, index) => (rank.info.host = names[hostOf[index]!]!));
      await Promise.all(links.map(measure));
      return [];
    }
    const notes = lostBefore.map((index) => {
      const lost = hostOf.flatMap((host, rank) => (host === index ? [rank] : []));
      return `${names[index]}: the connection to its agent was lost (${links[index]!.closeReason}); agent ${index} dialled in again, the state of rank${lost.length === 1 ? "" : "s"} ${lost.join(", ")} is lost`;
    });
    for (const [index, link] of gathered.entries()) {
      if (links[index] === link) continue;
      // A new agent may offer fewer slots than the ranks it must take.
      const needed = hostOf.filter((host) => host === index).length;
      if (link.slots < needed) throw new HostsError(`--rendezvous: agent ${index} dialled in again with ${link.slots} slots, but it runs ${needed} ranks of this group; give it --slots ${needed} or start a new group`);
      links[index] = link;
      names[index] = `${link.hostname} (agent ${index})`;
      await measure(link);
    }
    return notes;
  };

  /** The first time, dials every agent and lays the ranks out; later, dials again only agents whose connection ended. */
  const connect = async (timeoutMs: number, context: PrepareContext = {}): Promise<string[]> => {
    const notes = options.rendezvous ? await gather(context) : await dialAgents();
    // the heartbeat gives a silent agent up on the cell's terms (agentSilenceFor)
    for (const link of links) link.giveUpAfter(agentSilenceFor(timeoutMs));
    return notes;
  };
  const dialAgents = async (): Promise<string[]> => {
    if (links.length === 0) {
      const settled = await Promise.allSettled(options.entries.map(dial));
      const connected = settled.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
      const failures = settled.flatMap((result) => (result.status === "rejected" ? [result.reason as Error] : []));
      try {
        if (failures.length === 1) throw failures[0];
        if (failures.length > 1) throw new HostsError(failures.map((error) => error.message).join("\n"));
        hostOf = assignRanks(shape.size, options.entries.map((entry, index) => entry.slots ?? connected[index]!.slots), names);
      } catch (error) {
        for (const link of connected) link.close();
        throw error;
      }
      links = connected;
      ranks.forEach((rank, index) => (rank.info.host = names[hostOf[index]!]!));
      await Promise.all(links.map(measure));
      return [];
    }
    // Ranks of an agent whose connection ended have ended with it; they start afresh on the new connection.
    const notes: string[] = [];
    await Promise.all(links.map(async (link, index) => {
      if (!link.closed) return;
      links[index] = await dial(options.entries[index]!);
      await measure(links[index]!);
      const lost = hostOf.flatMap((host, rank) => (host === index ? [rank] : []));
      notes.push(`${names[index]}: the connection to its agent was lost (${link.closeReason}); started a fresh agent, the state of rank${lost.length === 1 ? "" : "s"} ${lost.join(", ")} is lost`);
    }));
    return notes;
  };

  /** The ranks' world: its rendezvous in this kernel, where the first host reaches it, or with --ssh-tunnel on that host. */
  const world = async (size: number) => {
    if (options.sshTunnel === true) return createAgentTcpWorld(links[0]!, size, { tls: options.dataTls === true });
    const where = links[0]?.localAddress;
    try {
      return await createTcpKernelWorld(size, where, { tls: options.dataTls === true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EADDRNOTAVAIL" && code !== "EINVAL") throw error;
      // ssh's SSH_CONNECTION on the host names a machine in between (a login node, NAT), not this kernel.
      throw new HostsError(
        `--hosts: the ranks would register with this kernel at ${where}, the address ${names[0]} sees this kernel at, but ${where} is not an address of this machine (${(error as Error).message}): the hosts reach this kernel through a login node or NAT and cannot dial it; pass --ssh-tunnel to run the ranks' rendezvous on ${names[0]} instead`,
      );
    }
  };
  const group = new RankGroup(shape, ranks, world, undefined, {
    ready: connect,
    closed: () => {
      clocks.forEach((clock) => clock.stop());
      // The launcher ends what it started first (scancel, SIGTERM to srun or mpirun): agents that lost
      // their links first could end a Slurm job by themselves, which Slurm then records COMPLETED, not
      // CANCELLED, and a kernel that exits next would race the cancel.
      rendezvous?.close();
      links.forEach((link) => link.close());
      void relay?.then((r) => r.close(), () => undefined);
    },
  });
  rankClocks.set(group, (rank) => {
    const link = links[hostOf[rank] ?? -1];
    return link === undefined ? undefined : clocks.get(link)?.estimate;
  });
  hostReports.set(group, () =>
    links.map((link, index) => {
      const entry = options.entries[index];
      const mine = hostOf.flatMap((host, rank) => (host === index ? [rank] : []));
      const measurement = measured.get(link);
      return {
        name: names[index]!,
        launcher: entry === undefined ? ("env" as const) : launcherOf(entry, options.launcher),
        agentVersion: link.agentVersion,
        agentHostname: link.hostname,
        ranks: mine,
        ...(entry?.gpus ? { gpus: entry.gpus.slice(0, mine.length) } : {}),
        ...(typeof measurement === "object" ? { link: measurement } : { unmeasured: measurement ?? "not measured yet" }),
        ...clockReport(clocks.get(link)),
      };
    }),
  );
  return group;
}

/** The clock part of a host's report: its offset, or why there is none. */
function clockReport(clock: HostClock | undefined): { clock: NonNullable<ReturnType<HostClock["report"]>> } | { clockUnmeasured: string } {
  const report = clock?.report();
  if (report !== undefined) return { clock: report };
  return { clockUnmeasured: clock?.failure ?? "not measured yet" };
}
