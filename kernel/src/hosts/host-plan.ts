/**
 * `%%distributed --hosts SPEC`: everything that can be checked before a
 * rank starts, checked in the order a user fixes them (the SPEC's lines,
 * the slots against -n, the token file, the ssh config file), each refusal
 * naming the line, value or flag; then the group that dials or launches the
 * agents on its first prepare.
 */
import { existsSync, readFileSync } from "node:fs";
import { UsageError } from "../errors";
import type { DistributedOptions } from "../magics/distributed-spec";
import type { GroupShape } from "../cluster/rank-messages";
import type { GroupPlan } from "../cluster/backends/plan-group";
import { packageVersion } from "../version";
import { createHostGroup } from "./host-group";
import { assignRanks, entryName, launcherOf, parseHostSpec, type HostEntry, type LauncherName } from "./host-spec";
import { defaultTokenFile, readTokenFile } from "./token";
import { normalizeFingerprint, type AgentTls } from "./agent-link";
import { planRendezvousGroup } from "./rendezvous-plan";

/** `--tls-ca FILE` (read now) or `--tls-fingerprint SHA256` (checked now), not both. */
function agentTls(options: DistributedOptions): AgentTls | undefined {
  if (options.tlsCa !== undefined && options.tlsFingerprint !== undefined) {
    throw new UsageError("%%distributed: give --tls-ca or --tls-fingerprint, not both", "--tls-fingerprint");
  }
  if (options.tlsFingerprint !== undefined) {
    const fingerprint = normalizeFingerprint(options.tlsFingerprint);
    if (!fingerprint) throw new UsageError(`%%distributed: --tls-fingerprint ${options.tlsFingerprint}: not a SHA-256 fingerprint (64 hex digits, colons allowed; openssl x509 -noout -fingerprint -sha256 prints it)`, "--tls-fingerprint");
    return { fingerprint };
  }
  if (options.tlsCa === undefined) return undefined;
  let ca: Buffer;
  try {
    ca = readFileSync(options.tlsCa);
  } catch (error) {
    throw new UsageError(`%%distributed: --tls-ca ${options.tlsCa}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`, "--tls-ca");
  }
  if (!ca.includes("-----BEGIN CERTIFICATE-----")) throw new UsageError(`%%distributed: --tls-ca ${options.tlsCa}: holds no PEM certificate`, "--tls-ca");
  return { ca };
}

/** The shape fields every backend shares (link, TF backend, memory cap). */
export type CommonShape = Omit<GroupShape, "size" | "backend">;

export function planHostGroup(options: DistributedOptions, common: CommonShape): GroupPlan {
  if (options.launcher === "env" || options.launcher === "slurm" || options.launcher === "mpi") return planRendezvousGroup(options, common);
  if (options.hosts === undefined) throw new UsageError(`%%distributed: --backend hosts needs --hosts SPEC (a hostfile or [user@]host[:port],...)`, "--hosts");
  const entries = parseHostSpec(options.hosts);
  const launcher = options.launcher ?? "auto";
  // When every entry's slots are known, more ranks than slots is refused before any host is reached.
  if (entries.every((entry) => entry.slots !== undefined)) assignRanks(options.workers, entries.map((entry) => entry.slots!), entries.map(entryName));
  const dialled = entries.filter((entry) => launcherOf(entry, launcher) === "agent");
  // Agents already running hold a token of their own; agents the ssh launcher starts get a fresh one.
  let token: Buffer | undefined;
  if (dialled.length > 0 || options.tokenFile !== undefined) {
    const tokenFile = options.tokenFile ?? defaultTokenFile();
    if (options.tokenFile === undefined && !existsSync(tokenFile)) {
      throw new UsageError(
        `%%distributed --hosts: ${entryName(dialled[0]!)} names a running agent (a port), which needs its token: pass --token-file FILE or create ${tokenFile} (mode 600); entries without a port are started through ssh instead`,
        "--token-file",
      );
    }
    // Read now: a missing or loose token file is refused before anything starts.
    token = readTokenFile(tokenFile, "--token-file");
  }
  if (options.sshConfig !== undefined && !existsSync(options.sshConfig)) {
    throw new UsageError(`%%distributed: --ssh-config ${options.sshConfig}: no such file`, "--ssh-config");
  }
  const tls = agentTls(options);
  if (options.dataVia === "ssh") checkDataViaSsh(options, entries, launcher);
  const launchFlags = [
    ...(options.launcher === undefined ? [] : [`--launcher ${options.launcher}`]),
    ...(options.sshConfig === undefined ? [] : [`--ssh-config ${options.sshConfig}`]),
    ...(options.sshTunnel === true ? ["--ssh-tunnel"] : []),
    ...(options.dataVia === undefined ? [] : [`--data-via ${options.dataVia}`]),
    ...(options.agentCommand === undefined ? [] : [`--agent-command ${options.agentCommand}`]),
    ...(options.tlsCa === undefined ? [] : [`--tls-ca ${options.tlsCa}`]),
    ...(options.tlsFingerprint === undefined ? [] : [`--tls-fingerprint ${options.tlsFingerprint}`]),
    ...(options.dataTls === undefined ? [] : [`--data-tls ${options.dataTls}`]),
  ];
  // The ranks' connections between hosts: encrypted when asked, or by default when the agents are reached over TLS.
  const dataTls = options.dataTls === "on" || ((options.dataTls ?? "auto") === "auto" && tls !== undefined);
  const shape: GroupShape = {
    size: options.workers,
    backend: "hosts",
    ...common,
    // The launcher flags ride with the SPEC: a change of either starts a new group.
    hosts: [options.hosts, ...launchFlags].join(" "),
    ...(options.tokenFile === undefined ? {} : { tokenFile: options.tokenFile }),
  };
  return {
    shape,
    start: (onEvent) =>
      createHostGroup(shape, onEvent, {
        entries,
        launcher,
        ...(token === undefined ? {} : { token }),
        ...(options.sshConfig === undefined ? {} : { sshConfig: options.sshConfig }),
        agentCommand: options.agentCommand ?? "distlab",
        ...(tls ? { tls } : {}),
        dataTls,
        ...(options.sshTunnel === true ? { sshTunnel: true } : {}),
        ...(options.dataVia === "ssh" ? { dataViaSsh: true } : {}),
        version: packageVersion(),
      }),
  };
}

/** `--data-via ssh` rides the ssh sessions of the ssh launcher, with the rendezvous on the first host, in plain TCP (ssh encrypts). */
function checkDataViaSsh(options: DistributedOptions, entries: readonly HostEntry[], launcher: LauncherName): void {
  if (options.sshTunnel !== true) {
    throw new UsageError("%%distributed: --data-via ssh needs --ssh-tunnel (the ranks' rendezvous runs on the first host, which they reach through ssh too)", "--data-via");
  }
  const dialled = entries.find((entry) => launcherOf(entry, launcher) !== "ssh");
  if (dialled) throw new UsageError(`%%distributed: --data-via ssh: ${entryName(dialled)} is not started through ssh (an entry with a port is a running agent); every host must be`, "--data-via");
  if (options.dataTls === "on") throw new UsageError("%%distributed: --data-via ssh and --data-tls on exclude each other: ssh already encrypts the ranks' connections", "--data-tls");
}
