/**
 * `distlab agent --connect env`: where the kernel's rendezvous is and which
 * agent this is, read from the variables a scheduler already sets, so that any
 * scheduler can start the agents (torchrun-style scripts, Slurm's srun, a
 * Kubernetes Indexed Job). Nothing here opens a socket: the result is the
 * address to dial and the index/world the agent announces in its handshake.
 *
 * Address, first found:  --connect HOST:PORT, DISTLAB_RENDEZVOUS=HOST:PORT,
 *                        MASTER_ADDR + MASTER_PORT (torchrun's names)
 * Index and world, the first family present:
 *   torchrun    RANK, WORLD_SIZE (LOCAL_RANK is logged when set)
 *   Open MPI    OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE (OMPI_COMM_WORLD_LOCAL_RANK logged);
 *               before Slurm's, since mpirun inside a Slurm job inherits the job's SLURM_PROCID
 *   Slurm       SLURM_PROCID, SLURM_NTASKS (SLURM_LOCALID is logged when set)
 *   Kubernetes  JOB_COMPLETION_INDEX, DISTLAB_WORLD_SIZE (the Job's completions)
 *
 * Every refusal names the variable and the form it expects.
 */
import { UsageError } from "../errors";

/** Where the agent dials and what it announces: agent `index` of `world` agents. */
export interface RendezvousEnv {
  host: string;
  port: number;
  index: number;
  world: number;
  /** The index within its node (LOCAL_RANK, SLURM_LOCALID), when the scheduler set one; for logs. */
  localIndex?: number;
  /** Which variables gave the address and the index, for the agent's log: `MASTER_ADDR:MASTER_PORT, RANK/WORLD_SIZE`. */
  source: string;
}

/** The families of index/world variables, in the order they are looked for. */
const FAMILIES = [
  { index: "RANK", world: "WORLD_SIZE", local: "LOCAL_RANK", scheduler: "torchrun" },
  { index: "OMPI_COMM_WORLD_RANK", world: "OMPI_COMM_WORLD_SIZE", local: "OMPI_COMM_WORLD_LOCAL_RANK", scheduler: "Open MPI's mpirun" },
  { index: "SLURM_PROCID", world: "SLURM_NTASKS", local: "SLURM_LOCALID", scheduler: "Slurm" },
  { index: "JOB_COMPLETION_INDEX", world: "DISTLAB_WORLD_SIZE", local: undefined, scheduler: "a Kubernetes Indexed Job" },
] as const;

export class RendezvousEnvError extends UsageError {
  constructor(message: string, variable: string) {
    super(`distlab agent --connect env: ${message}`, variable);
  }
}

/** HOST:PORT or [IPv6]:PORT -> host and port; undefined if not that form. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

/** A variable that must hold a whole number at least `min`. */
function wholeNumber(env: NodeJS.ProcessEnv, name: string, min: number, what: string): number {
  const text = env[name]!.trim();
  if (!/^\d+$/.test(text) || Number(text) < min) throw new RendezvousEnvError(`${name}=${JSON.stringify(env[name])} is not ${what} (expected e.g. ${name}=${min === 0 ? 0 : 2})`, name);
  return Number(text);
}

/**
 * Reads the rendezvous from `env`; `connect` is the `--connect` value when it names an address
 * (not `env` and not absent). Throws RendezvousEnvError naming the variable at fault.
 */
export function readRendezvousEnv(env: NodeJS.ProcessEnv, connect?: string): RendezvousEnv {
  const set = (name: string) => env[name] !== undefined && env[name]!.trim() !== "";
  let address: { host: string; port: number };
  let addressSource: string;
  if (connect !== undefined) {
    const parsed = parseHostPort(connect);
    if (!parsed) throw new RendezvousEnvError(`--connect ${JSON.stringify(connect)} is not HOST:PORT (e.g. --connect 10.0.0.5:29400) or env`, "--connect");
    address = parsed;
    addressSource = "--connect";
  } else if (set("DISTLAB_RENDEZVOUS")) {
    const parsed = parseHostPort(env.DISTLAB_RENDEZVOUS!);
    if (!parsed) throw new RendezvousEnvError(`DISTLAB_RENDEZVOUS=${JSON.stringify(env.DISTLAB_RENDEZVOUS)} is not HOST:PORT (expected e.g. DISTLAB_RENDEZVOUS=10.0.0.5:29400)`, "DISTLAB_RENDEZVOUS");
    address = parsed;
    addressSource = "DISTLAB_RENDEZVOUS";
  } else if (set("MASTER_ADDR") || set("MASTER_PORT")) {
    if (!set("MASTER_ADDR")) throw new RendezvousEnvError("MASTER_PORT is set but MASTER_ADDR is not (expected the kernel's address, e.g. MASTER_ADDR=10.0.0.5)", "MASTER_ADDR");
    if (!set("MASTER_PORT")) throw new RendezvousEnvError("MASTER_ADDR is set but MASTER_PORT is not (expected the kernel's --rendezvous port, e.g. MASTER_PORT=29400)", "MASTER_PORT");
    const port = wholeNumber(env, "MASTER_PORT", 1, "a port number");
    if (port > 65535) throw new RendezvousEnvError(`MASTER_PORT=${port} is over 65535`, "MASTER_PORT");
    const host = env.MASTER_ADDR!.trim();
    if (/\s|\//.test(host)) throw new RendezvousEnvError(`MASTER_ADDR=${JSON.stringify(env.MASTER_ADDR)} is not a host name or address (expected e.g. MASTER_ADDR=10.0.0.5)`, "MASTER_ADDR");
    address = { host: host.replace(/^\[|\]$/g, ""), port };
    addressSource = "MASTER_ADDR:MASTER_PORT";
  } else {
    throw new RendezvousEnvError(
      "no rendezvous address: give --connect HOST:PORT, or set DISTLAB_RENDEZVOUS=HOST:PORT, or torchrun's MASTER_ADDR and MASTER_PORT (the address of the kernel's %%distributed --rendezvous)",
      "DISTLAB_RENDEZVOUS",
    );
  }
  const family = FAMILIES.find((candidate) => set(candidate.index) || set(candidate.world));
  if (!family) {
    throw new RendezvousEnvError(
      "no agent index: set RANK and WORLD_SIZE (torchrun), or run under mpirun (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE) or srun (SLURM_PROCID, SLURM_NTASKS), or in a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with DISTLAB_WORLD_SIZE set to the Job's completions)",
      "RANK",
    );
  }
  if (!set(family.index)) throw new RendezvousEnvError(`${family.world} is set but ${family.index} is not (${family.scheduler} sets both; expected e.g. ${family.index}=0)`, family.index);
  if (!set(family.world)) {
    const hint = family.world === "DISTLAB_WORLD_SIZE" ? "the number of agents, the Job's spec.completions" : "the number of agents";
    throw new RendezvousEnvError(`${family.index} is set but ${family.world} is not (expected ${hint}, e.g. ${family.world}=2)`, family.world);
  }
  const index = wholeNumber(env, family.index, 0, "a whole number");
  const world = wholeNumber(env, family.world, 1, "a positive whole number");
  if (index >= world) throw new RendezvousEnvError(`${family.index}=${index} with ${family.world}=${world}: the index must be below the world size (0 to ${world - 1})`, family.index);
  const result: RendezvousEnv = { ...address, index, world, source: `${addressSource}, ${family.index}/${family.world}` };
  if (family.local !== undefined && set(family.local)) result.localIndex = wholeNumber(env, family.local, 0, "a whole number");
  return result;
}
