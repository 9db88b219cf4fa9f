/**
 * `--launcher slurm|mpi`: the command every agent runs, and the starter
 * (slurm-launcher.ts, mpi-launcher.ts) that runs it once the kernel listens.
 * Checked at plan time, before anything listens: the scheduler's commands on
 * PATH, an allocation or --slurm, --hosts or --mpi.
 *
 * The agents are told the rendezvous explicitly (`--connect HOST:PORT`; a
 * wildcard address becomes this machine's hostname), the token file by its
 * absolute path (on a cluster the home directory is shared), and, when the
 * kernel serves TLS, the SHA-256 fingerprint of its certificate to pin.
 */
import { X509Certificate } from "node:crypto";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { UsageError } from "../errors";
import type { DistributedOptions } from "../magics/distributed-spec";
import { splitArgs } from "../magics/split-magic";
import { parseHostSpec } from "./host-spec";
import { checkMpiLaunch, MpiStarter } from "./mpi-launcher";
import type { AgentStarter } from "./rendezvous";
import { checkSlurmLaunch, shellWord, SlurmStarter } from "./slurm-launcher";

export interface PlannedStarter {
  /** What distinguishes this launch in the group's shape (a change starts a new group). */
  shapeKey: string;
  /** The starter for a rendezvous listening at `address` (HOST:PORT as bound). */
  create(address: string, log: (line: string) => void): AgentStarter;
}

/** `0.0.0.0:5` / `[::]:5` -> `HOSTNAME:5`: where agents on other nodes dial a kernel listening on every address. */
export function dialableAddress(bound: string): string {
  const match = /^(\[.*\]|[^:]+):(\d+)$/.exec(bound);
  if (!match) return bound;
  const host = match[1] === "0.0.0.0" || match[1] === "[::]" ? hostname() : match[1]!;
  return `${host}:${match[2]}`;
}

function words(flag: string, text: string): string[] {
  try {
    return splitArgs(text);
  } catch (error) {
    throw new UsageError(`%%distributed ${flag} ${JSON.stringify(text)}: ${(error as Error).message}`, flag);
  }
}

export function planAgentStarter(options: DistributedOptions, launcher: "slurm" | "mpi", tokenFile: string, tls: { cert: Buffer } | undefined): PlannedStarter {
  const env = process.env;
  const base = options.agentCommand ?? "distlab";
  const checkKernel = tls ? ` --tls-fingerprint ${new X509Certificate(tls.cert).fingerprint256}` : options.insecure ? " --insecure" : "";
  const agentCommand = (address: string) => `${base} agent --connect ${shellWord(dialableAddress(address))} --token-file ${shellWord(resolve(tokenFile))}${checkKernel}`;
  if (launcher === "slurm") {
    const sbatchArgs = options.slurm === undefined ? undefined : words("--slurm", options.slurm);
    checkSlurmLaunch(env, options.slurm);
    const per = options.slurmPer ?? "task";
    const allocation = env.SLURM_JOB_ID;
    return {
      shapeKey: [`--slurm-per ${per}`, ...(options.slurm === undefined ? [`(allocation ${allocation})`] : [`--slurm ${JSON.stringify(options.slurm)}`]), ...(options.agentCommand === undefined ? [] : [`--agent-command ${options.agentCommand}`])].join(" "),
      create: (address, log) =>
        new SlurmStarter({ agentCommand: agentCommand(address), ranks: options.workers, per, ...(sbatchArgs ? { sbatchArgs } : { allocation: allocation! }), env, log }),
    };
  }
  const hosts = options.hosts === undefined ? undefined : parseHostSpec(options.hosts).map((entry) => entry.host);
  const mpiArgs = options.mpi === undefined ? undefined : words("--mpi", options.mpi);
  checkMpiLaunch(env, hosts, mpiArgs);
  return {
    shapeKey: [...(options.hosts === undefined ? [] : [`--hosts ${options.hosts}`]), ...(options.mpi === undefined ? [] : [`--mpi ${JSON.stringify(options.mpi)}`]), ...(options.agentCommand === undefined ? [] : [`--agent-command ${options.agentCommand}`])].join(" "),
    create: (address, log) => new MpiStarter({ agentCommand: agentCommand(address), ranks: options.workers, ...(hosts ? { hosts } : {}), ...(mpiArgs ? { mpiArgs } : {}), env, log }),
  };
}
