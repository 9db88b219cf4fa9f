/**
 * `--backend hosts`: the ranks run on agents (agent.ts) of other machines,
 * as process ranks (the processes backend's ProcessRank over a
 * RemoteRankChild). The agents are dialled and authenticated when the group
 * first prepares, which is also when `--hosts` entries without `slots=`
 * learn their agent's slots and each rank learns its host. The ranks' TCP
 * world is formed at a rendezvous this kernel runs on the address it
 * reached the first agent from; data then flows rank to rank.
 */
import { createTcpKernelWorld } from "../cluster/comm-world";
import { ProcessRank } from "../cluster/backends/processes/process-rank-handle";
import type { GroupShape, RankEvent } from "../cluster/rank-messages";
import { RankGroup } from "../cluster/kernel-side/rank-group";
import { AgentLink } from "./agent-link";
import { assignRanks, HostsError, type HostEntry } from "./host-spec";
import { RemoteRankChild } from "./remote-rank";

export interface HostGroupOptions {
  entries: readonly HostEntry[];
  token: Buffer;
  version: string;
}

export function createHostGroup(shape: GroupShape, onEvent: (rank: number, event: RankEvent) => void, options: HostGroupOptions): RankGroup {
  let links: AgentLink[] = [];
  /** Host index of each rank, once the agents answered. */
  let hostOf: number[] = [];
  const names = options.entries.map((entry) => `${entry.host}:${entry.port}`);
  const ranks = Array.from({ length: shape.size }, (_, rank) => {
    const info = { rank, size: shape.size, host: "(not connected)", memoryCapBytes: shape.memoryCapBytes, ...(shape.tfBackend ? { tfBackend: shape.tfBackend } : {}) };
    return new ProcessRank(info, onEvent, (env) => new RemoteRankChild(links[hostOf[rank]!]!, rank, env));
  });

  const dial = (entry: HostEntry) => AgentLink.connect({ host: entry.host, port: entry.port, token: options.token, version: options.version });

  /** The first time, dials every agent and lays the ranks out; later, dials again only agents whose connection ended. */
  const connect = async (): Promise<void> => {
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
      return;
    }
    // Ranks of an agent whose connection ended have ended with it; they start afresh on the new connection.
    await Promise.all(links.map(async (link, index) => {
      if (link.closed) links[index] = await dial(options.entries[index]!);
    }));
  };

  return new RankGroup(shape, ranks, (size) => createTcpKernelWorld(size, links[0]?.localAddress), undefined, {
    ready: connect,
    closed: () => links.forEach((link) => link.close()),
  });
}
