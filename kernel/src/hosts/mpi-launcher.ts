/**
 * `%%distributed --launcher mpi`: Open MPI's `mpirun` starts the agents,
 * which dial this kernel's rendezvous (rendezvous.ts) and take their index
 * from OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE (rendezvous-env.ts). MPI is
 * only the launcher here: the agents never call MPI, mpirun places them and
 * tears them down.
 *
 *   --hosts h1,h2[:port ignored] or a hostfile   ->  mpirun -np 2 --host h1:1,h2:1   (one agent a line)
 *   --mpi "ARGS"                                 ->  mpirun ARGS (after the --host words, if any)
 *
 * Each agent runs ceil(ranks / OMPI_COMM_WORLD_SIZE) slots unless its
 * hostfile line says slots=N. Open MPI refuses to run as root unless told:
 * the kernel passes --allow-run-as-root and sets OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)
 * when it runs as root, as a container often does. Closing the group ends
 * mpirun (SIGTERM, which ends its processes).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { UsageError } from "../errors";
import type { AgentStarter } from "./rendezvous";
import { onPath, shellWord } from "./slurm-launcher";

const MPIRUN_STOP_GRACE_MS = 3000;
const STDERR_LINES = 6;

export interface MpiLaunch {
  agentCommand: string;
  ranks: number;
  /** One agent per entry: host names (a hostfile's or --hosts' entries, in order). */
  hosts?: string[];
  /** `--mpi ARGS`, split into words. */
  mpiArgs?: string[];
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

export function checkMpiLaunch(env: NodeJS.ProcessEnv, hosts: string[] | undefined, mpiArgs: string[] | undefined): void {
  if (onPath("mpirun", env) === undefined) {
    throw new UsageError(`%%distributed --launcher mpi: Open MPI is not installed here: no \`mpirun\` on PATH (${env.PATH ?? "PATH is unset"}); install it (Debian: openmpi-bin) or use --launcher env and start the agents yourself`, "--launcher");
  }
  if (hosts === undefined && mpiArgs === undefined) {
    throw new UsageError('%%distributed --launcher mpi: say where the agents run: --hosts h1,h2 (or a hostfile, one agent a line) or --mpi "ARGS" (mpirun arguments, e.g. "-np 2 --hostfile nodes")', "--hosts");
  }
}

/** The words after `mpirun`. */
export function mpirunWords(launch: MpiLaunch, asRoot: boolean): string[] {
  const placement = launch.hosts === undefined ? [] : ["-np", String(launch.hosts.length), "--host", hostList(launch.hosts)];
  const slots = `$(( (${launch.ranks} + OMPI_COMM_WORLD_SIZE - 1) / OMPI_COMM_WORLD_SIZE ))`;
  return [...(asRoot ? ["--allow-run-as-root"] : []), ...placement, ...(launch.mpiArgs ?? []), "/bin/sh", "-c", `exec ${launch.agentCommand} --slots "${slots}"`];
}

/** h1,h1,h2 -> h1:2,h2:1 (Open MPI's --host takes a slot count per host). */
function hostList(hosts: string[]): string {
  const counts = new Map<string, number>();
  for (const host of hosts) counts.set(host, (counts.get(host) ?? 0) + 1);
  return [...counts].map(([host, count]) => `${host}:${count}`).join(",");
}

export class MpiStarter implements AgentStarter {
  private child?: ChildProcess;
  private stderr = "";
  private problem?: Error;
  private changed: () => void = () => {};
  private stopped = false;

  constructor(private readonly launch: MpiLaunch) {}

  async ensureStarted(changed: () => void): Promise<void> {
    this.changed = changed;
    if (this.stopped || (this.child && this.child.exitCode === null && this.child.signalCode === null)) return;
    this.problem = undefined;
    const asRoot = process.getuid?.() === 0;
    const words = mpirunWords(this.launch, asRoot);
    const env = asRoot ? { ...this.launch.env, OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" } : this.launch.env;
    this.launch.log(`starting agents: mpirun ${words.map(shellWord).join(" ")}`);
    const child = spawn("mpirun", words, { env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => this.launch.log(`mpirun: ${chunk.toString().trimEnd()}`));
    child.stderr!.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-8192);
      this.launch.log(`mpirun: ${chunk.toString().trimEnd()}`);
    });
    child.on("error", (error) => {
      this.problem = new UsageError(`%%distributed --launcher mpi: mpirun could not start: ${error.message}`, "--launcher");
      this.changed();
    });
    child.on("exit", (code, signal) => {
      if (this.stopped || this.child !== child) return;
      const said = this.stderr.trim().split("\n").filter((line) => line.trim() !== "" && !/^-+$/.test(line.trim())).slice(-STDERR_LINES).join("\n");
      const flag = this.launch.mpiArgs ? "--mpi" : "--hosts";
      this.problem = new UsageError(`%%distributed --launcher mpi ${flag}: mpirun ended (${signal ?? `status ${code}`}) before every agent connected${said ? `; mpirun said:\n${said}` : ""}`, flag);
      this.changed();
    });
  }

  state(): string | undefined {
    return this.child ? `mpirun running (pid ${this.child.pid})` : undefined;
  }

  failure(): Error | undefined {
    return this.problem;
  }

  watch(): void {}

  stop(): void {
    this.stopped = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.launch.log(`ending mpirun (pid ${child.pid})`);
    child.kill("SIGTERM");
    setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"), MPIRUN_STOP_GRACE_MS).unref();
  }
}
