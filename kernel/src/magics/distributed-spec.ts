/**
 * The `%%distributed` cell magic: its flag spec (the single source of parsing,
 * help and completion) and the typed options it produces.
 */
import { UsageError } from "../errors";
import { flagHelpLines, parseFlags, type FlagSpec } from "./flags";
import { parseLink } from "../comm/link";
import { parseMemorySize } from "./memory-size";
import type { LinkModel } from "../comm/types";
import { TF_BACKENDS, type TfBackendName } from "../compute/backend-names";
import { LAUNCHERS, type LauncherName } from "../hosts/host-spec";

/** Launchers whose agents dial this kernel's rendezvous: started by a scheduler (env), or by srun/sbatch or mpirun for you. */
export const SCHEDULER_LAUNCHERS = ["env", "slurm", "mpi"] as const;
export type SchedulerLauncher = (typeof SCHEDULER_LAUNCHERS)[number];
const dialsIn = (launcher: unknown): boolean => (SCHEDULER_LAUNCHERS as readonly unknown[]).includes(launcher);
import { DEFAULT_TOKEN_FILE_HELP } from "../hosts/token";

/** The port `--rendezvous` listens on when it names none. */
export const DEFAULT_RENDEZVOUS_PORT = 29471;

export const BACKENDS = ["threads", "processes", "gpus", "hosts"] as const;
export type BackendName = (typeof BACKENDS)[number];

// The names live with the compute layer that loads them; the flag's spec lists them.
export { TF_BACKENDS, type TfBackendName };

/**
 * Upper bound on ranks for any backend. Collective descriptors and
 * per-pair channels grow with N^2, and a notebook that prints one line per
 * rank stops being readable long before; 256 covers a multi-host group of
 * 32 hosts x 8 GPUs. The threads backend has a lower bound of its own
 * (see MAX_THREAD_RANKS in cluster/), since every thread rank holds a V8
 * heap of tens of MiB with TensorFlow.js loaded.
 */
export const MAX_WORKERS = 256;

export const DISTRIBUTED_FLAGS: readonly FlagSpec[] = [
  {
    name: "workers",
    alias: "n",
    type: "integer",
    valueName: "N",
    min: 1,
    max: MAX_WORKERS,
    default: 2,
    rangeReason: "per-pair channels grow with N^2; 256 covers 32 hosts x 8 GPUs",
    help: "number of ranks; with --backend gpus one per GPU by default, and more share the GPUs round-robin",
  },
  {
    name: "backend",
    type: "choice",
    valueName: "KIND",
    choices: BACKENDS,
    default: "threads",
    help: "where ranks run: worker threads of the kernel, child processes, one process per GPU, remote hosts",
  },
  {
    name: "hosts",
    type: "string",
    valueName: "SPEC",
    help: "machines to run ranks on (implies --backend hosts): a hostfile (lines `[user@]host[:port] [slots=N] [gpus=0,1]`) or [user@]host[:port],...",
  },
  {
    name: "launcher",
    type: "choice",
    valueName: "HOW",
    choices: [...LAUNCHERS, ...SCHEDULER_LAUNCHERS],
    default: "auto",
    help: "with --hosts: ssh starts `distlab agent` on each host through OpenSSH; agent dials agents already listening at host:port; auto: agent for entries with a port, ssh for the others. env (no --hosts): agents started by a scheduler dial this kernel's --rendezvous; slurm: srun (in an allocation) or sbatch (--slurm ARGS) starts them; mpi: Open MPI's mpirun starts them on --hosts or by --mpi ARGS",
  },
  { name: "slurm", type: "string", valueName: "ARGS", help: "with --launcher slurm outside an allocation: submit the agents as a job with these sbatch arguments, e.g. \"-p gpu -N 2 --time 1:00:00\"; the job is cancelled when the group closes" },
  { name: "slurm-per", type: "choice", valueName: "UNIT", choices: ["node", "task"], default: "task", help: "with --launcher slurm: one agent per Slurm task (its GPUs by SLURM_LOCALID) or per node" },
  { name: "mpi", type: "string", valueName: "ARGS", help: "with --launcher mpi: mpirun arguments placing the agents (e.g. \"-np 2 --hostfile nodes\"), instead of or after those --hosts gives" },
  { name: "rendezvous", type: "string", valueName: "HOST:PORT", help: `with --launcher env, slurm or mpi: where the kernel listens for agents (\`distlab agent --connect\`); default 127.0.0.1:${DEFAULT_RENDEZVOUS_PORT} (slurm, mpi: a free port), a non-loopback address needs --tls-cert/--tls-key or --insecure` },
  { name: "rendezvous-timeout", type: "number", valueName: "SECONDS", min: 0.1, max: 86_400, default: 60, help: "with --launcher env, slurm or mpi: how long a cell waits for every agent to dial in" },
  { name: "tls-cert", type: "string", valueName: "FILE", help: "with --launcher env: the certificate chain (PEM) the rendezvous serves TLS with" },
  { name: "tls-key", type: "string", valueName: "FILE", help: "with --launcher env: the private key (PEM) of --tls-cert" },
  { name: "insecure", type: "boolean", help: "with --launcher env: listen on a non-loopback --rendezvous without TLS (the control traffic is readable on the network)" },
  { name: "ssh-config", type: "string", valueName: "FILE", help: "with --launcher ssh: the ssh config file (ssh -F; default ~/.ssh/config)" },
  { name: "ssh-tunnel", type: "boolean", help: "with --hosts: for hosts behind a login node (ProxyJump in the ssh config): the ranks' rendezvous runs on the first host, so the hosts never need to reach this kernel" },
  {
    name: "data-via",
    type: "choice",
    valueName: "PATH",
    choices: ["direct", "ssh"],
    default: "direct",
    help: "with --hosts --ssh-tunnel: direct: ranks dial each other on the hosts' network; ssh: the ranks' connections between hosts ride the kernel's ssh sessions (for compute hosts that cannot reach each other)",
  },
  { name: "agent-command", type: "string", valueName: "CMD", help: "with --launcher ssh, slurm or mpi: what runs distlab on the hosts (default distlab)" },
  { name: "tls-ca", type: "string", valueName: "FILE", help: "with --hosts: dial running agents over TLS, trusting the CA certificates in FILE (PEM)" },
  { name: "tls-fingerprint", type: "string", valueName: "SHA256", help: "with --hosts: dial running agents over TLS, accepting only a certificate of this SHA-256 fingerprint" },
  {
    name: "data-tls",
    type: "choice",
    valueName: "WHEN",
    choices: ["auto", "on", "off"],
    default: "auto",
    help: "with --hosts: TLS on the ranks' data connections between hosts (same-host ranks never encrypt); auto: on when the agents are dialled over TLS (--tls-ca/--tls-fingerprint), or with --launcher env when the rendezvous serves TLS (--tls-cert)",
  },
  { name: "token-file", type: "string", valueName: "FILE", help: `with --hosts or --launcher env: the file (mode 600) holding the token the agents were started with (default ${DEFAULT_TOKEN_FILE_HELP})` },
  {
    name: "timeout",
    type: "number",
    valueName: "SECONDS",
    min: 0.001,
    max: 86_400,
    default: 60,
    help: "how long a collective waits for a peer before failing with the peer's rank",
  },
  {
    name: "group-outputs",
    type: "choice",
    valueName: "MODE",
    choices: ["order", "rank"],
    default: "order",
    help: "order: stream each line live as it comes; rank: collect and print grouped per rank at the end",
  },
  { name: "link", type: "string", valueName: "SPEC", help: "emulated link between ranks, e.g. bandwidth=1Gbit,latency=2ms" },
  {
    name: "tf-backend",
    type: "choice",
    valueName: "NAME",
    choices: TF_BACKENDS,
    defaultHelp: "webgpu on a GPU, else tensorflow if tfjs-node is installed, else wasm, else cpu",
    help: "TensorFlow.js backend of every rank",
  },
  {
    name: "memory",
    type: "string",
    valueName: "SIZE",
    help: "most memory each rank may hold, ArrayBuffers and typed arrays included, e.g. 4GiB or 512MiB (default: 3/4 of the machine's memory divided by the ranks)",
  },
  {
    name: "timeline",
    type: "choice",
    valueName: "WHEN",
    choices: ["auto", "always", "off"],
    default: "auto",
    help: "auto: show the timeline when the cell ran a collective or took at least 0.5 s; always; off: do not record it",
  },
  { name: "no-timeline", type: "boolean", help: "the same as --timeline off" },
  { name: "help", alias: "h", type: "boolean", help: "show this help" },
];

export interface DistributedOptions {
  workers: number;
  /** Set when -n/--workers was typed (absent: the default); --backend gpus defaults it to the number of GPUs. */
  workersGiven?: boolean;
  backend: BackendName;
  hosts?: string;
  tokenFile?: string;
  launcher?: LauncherName | SchedulerLauncher;
  /** `--launcher slurm`: sbatch arguments (outside an allocation), and one agent per task or node. */
  slurm?: string;
  slurmPer?: "node" | "task";
  /** `--launcher mpi`: mpirun arguments. */
  mpi?: string;
  /** `--launcher env`: HOST:PORT the kernel listens on for agents, and how long a cell waits for them (seconds). */
  rendezvous?: string;
  rendezvousTimeoutSeconds?: number;
  /** `--launcher env`: the TLS files the rendezvous serves with, or --insecure. */
  tlsCert?: string;
  tlsKey?: string;
  insecure?: boolean;
  sshConfig?: string;
  /** `--ssh-tunnel`: the ranks' rendezvous runs on the first agent's host (hosts/agent-rendezvous.ts). */
  sshTunnel?: boolean;
  /** `--data-via`: ssh: the ranks' connections between hosts ride the kernel's ssh sessions (hosts/data-relay.ts). */
  dataVia?: "direct" | "ssh";
  agentCommand?: string;
  tlsCa?: string;
  tlsFingerprint?: string;
  /** `--data-tls`: TLS on rank-to-rank connections between hosts; auto follows the agents' TLS. */
  dataTls?: "auto" | "on" | "off";
  timeoutSeconds: number;
  groupOutputs: "order" | "rank";
  /** Emulated link between ranks (bytes per second, seconds). */
  link?: LinkModel;
  /** Undefined: the best backend available on each rank. */
  tfBackend?: TfBackendName;
  /** `--memory`, bytes per rank; undefined: the default share of the machine (memory-size.ts). */
  memoryBytes?: number;
  /** When the cell's timeline is shown (`--timeline`); "off" also stops the ranks recording it. */
  timeline: TimelineWhen;
  help: boolean;
}

export type TimelineWhen = "auto" | "always" | "off";

const WHERE = "%%distributed";

/** Parses the words after `%%distributed`; throws `UsageError` naming the flag. */
export function parseDistributedFlags(words: readonly string[]): DistributedOptions {
  const { values, given } = parseFlags(WHERE, words, DISTRIBUTED_FLAGS);
  const options: DistributedOptions = {
    workers: values.get("workers") as number,
    // --hosts alone, or --launcher env, means the hosts backend.
    backend: !given.has("backend") && (values.get("hosts") !== undefined || dialsIn(values.get("launcher"))) ? "hosts" : (values.get("backend") as BackendName),
    timeoutSeconds: values.get("timeout") as number,
    groupOutputs: values.get("group-outputs") as "order" | "rank",
    timeline: values.get("timeline") as TimelineWhen,
    help: values.get("help") === true,
  };
  if (given.has("workers")) options.workersGiven = true;
  if (values.get("no-timeline") === true) {
    if (given.has("timeline") && options.timeline !== "off") {
      throw new UsageError(`${WHERE}: --no-timeline contradicts --timeline ${options.timeline}`, "--no-timeline");
    }
    options.timeline = "off";
  }
  const hosts = values.get("hosts") as string | undefined;
  if (hosts !== undefined) {
    if (options.backend !== "hosts") throw new UsageError(`${WHERE}: --hosts only applies with --backend hosts`, "--hosts");
    options.hosts = hosts;
  }
  const tokenFile = values.get("token-file") as string | undefined;
  if (tokenFile !== undefined) {
    if (options.backend !== "hosts") throw new UsageError(`${WHERE}: --token-file only applies with --backend hosts`, "--token-file");
    options.tokenFile = tokenFile;
  }
  for (const [flag, key] of [["launcher", "launcher"], ["ssh-config", "sshConfig"], ["ssh-tunnel", "sshTunnel"], ["data-via", "dataVia"], ["agent-command", "agentCommand"], ["tls-ca", "tlsCa"], ["tls-fingerprint", "tlsFingerprint"], ["data-tls", "dataTls"]] as const) {
    if (!given.has(flag)) continue;
    if (options.backend !== "hosts") throw new UsageError(`${WHERE}: --${flag} only applies with --hosts`, `--${flag}`);
    (options as unknown as Record<string, unknown>)[key] = values.get(flag);
  }
  for (const [flag, key] of [["rendezvous", "rendezvous"], ["rendezvous-timeout", "rendezvousTimeoutSeconds"], ["tls-cert", "tlsCert"], ["tls-key", "tlsKey"], ["insecure", "insecure"]] as const) {
    if (!given.has(flag)) continue;
    if (!dialsIn(options.launcher)) throw new UsageError(`${WHERE}: --${flag} only applies with --launcher env, slurm or mpi`, `--${flag}`);
    (options as unknown as Record<string, unknown>)[key] = values.get(flag);
  }
  for (const [flag, key, launcher] of [["slurm", "slurm", "slurm"], ["slurm-per", "slurmPer", "slurm"], ["mpi", "mpi", "mpi"]] as const) {
    if (!given.has(flag)) continue;
    if (options.launcher !== launcher) throw new UsageError(`${WHERE}: --${flag} only applies with --launcher ${launcher}`, `--${flag}`);
    (options as unknown as Record<string, unknown>)[key] = values.get(flag);
  }
  if (dialsIn(options.launcher)) {
    if (options.hosts !== undefined && options.launcher !== "mpi") throw new UsageError(`${WHERE}: --launcher ${options.launcher} takes no --hosts: the agents dial in at --rendezvous instead`, "--hosts");
    options.rendezvousTimeoutSeconds ??= values.get("rendezvous-timeout") as number;
  }
  if (options.launcher === "slurm") options.slurmPer ??= values.get("slurm-per") as "node" | "task";
  const link = values.get("link") as string | undefined;
  if (link !== undefined) options.link = parseLinkFlag(link);
  const tfBackend = values.get("tf-backend") as TfBackendName | undefined;
  if (tfBackend !== undefined) options.tfBackend = tfBackend;
  const memory = values.get("memory") as string | undefined;
  if (memory !== undefined) options.memoryBytes = parseMemorySize(WHERE, "--memory", memory);
  return options;
}

export function distributedHelp(): string {
  return [
    "%%distributed [flags]",
    "  <TypeScript cell body>",
    "",
    "Runs the cell body SPMD on a group of ranks. Inside the cell, `dist` (rank, size,",
    "barrier, allReduce, broadcast, allGather, send, recv) and `tf` (TensorFlow.js) are",
    "globals. The group is reused while -n, --backend, --link, --tf-backend and --memory",
    "are unchanged, so each rank keeps its declarations between cells.",
    "",
    "Flags:",
    ...flagHelpLines(DISTRIBUTED_FLAGS),
  ].join("\n");
}

/** The communication layer owns the link syntax; here its errors become usage errors naming the flag. */
function parseLinkFlag(text: string): LinkModel {
  try {
    return parseLink(text);
  } catch (error) {
    const message = (error as Error).message.replace(/^--link:\s*/, "");
    throw new UsageError(`${WHERE}: --link ${message}`, "--link");
  }
}
