/**
 * `%%distributed --launcher env|slurm|mpi [--rendezvous HOST:PORT]`:
 * everything checked before the kernel listens (the address, the token file,
 * TLS or --insecure for a non-loopback address, Slurm or mpirun on PATH),
 * each refusal naming its flag; then a hosts group (host-group.ts) whose
 * agents dial in at the rendezvous (rendezvous.ts) on the group's first
 * prepare. With slurm or mpi the rendezvous starts them too
 * (scheduler-starter.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import { UsageError } from "../errors";
import type { DistributedOptions } from "../magics/distributed-spec";
import { DEFAULT_RENDEZVOUS_PORT } from "../magics/distributed-spec";
import type { GroupShape } from "../cluster/rank-messages";
import type { GroupPlan } from "../cluster/backends/plan-group";
import { packageVersion } from "../version";
import { isLoopback } from "./agent";
import { createHostGroup } from "./host-group";
import type { CommonShape } from "./host-plan";
import { Rendezvous } from "./rendezvous";
import { parseHostPort } from "./rendezvous-env";
import { defaultTokenFile, readTokenFile } from "./token";
import { planAgentStarter } from "./scheduler-starter";

/** `--tls-cert` and `--tls-key` together, each a readable PEM file; undefined when neither is given. */
function rendezvousTls(options: DistributedOptions): { cert: Buffer; key: Buffer } | undefined {
  if (options.tlsCert === undefined && options.tlsKey === undefined) return undefined;
  if (options.tlsCert === undefined || options.tlsKey === undefined) {
    const missing = options.tlsCert === undefined ? "--tls-cert" : "--tls-key";
    throw new UsageError(`%%distributed: --tls-cert FILE and --tls-key FILE go together (${missing} is missing)`, missing);
  }
  const read = (flag: string, path: string): Buffer => {
    let text: Buffer;
    try {
      text = readFileSync(path);
    } catch (error) {
      throw new UsageError(`%%distributed: ${flag} ${path}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`, flag);
    }
    if (!text.includes("-----BEGIN ")) throw new UsageError(`%%distributed: ${flag} ${path}: not a PEM file`, flag);
    return text;
  };
  return { cert: read("--tls-cert", options.tlsCert), key: read("--tls-key", options.tlsKey) };
}

export function planRendezvousGroup(options: DistributedOptions, common: CommonShape): GroupPlan {
  const launcher = options.launcher ?? "env";
  for (const [flag, value] of [["--tls-ca", options.tlsCa], ["--tls-fingerprint", options.tlsFingerprint], ["--ssh-config", options.sshConfig], ...(launcher === "env" ? [["--agent-command", options.agentCommand] as const] : [])] as const) {
    if (value !== undefined) {
      throw new UsageError(`%%distributed: ${flag} does not apply with --launcher ${launcher} (the agents dial the kernel: they check its certificate with their own --tls-ca or --tls-fingerprint; the kernel serves TLS with --tls-cert and --tls-key)`, flag);
    }
  }
  // The kernel tells agents it starts itself where it listens: any free port will do.
  // (slurm, mpi: `--rendezvous HOST` alone, or HOST:0, is HOST at a free port.)
  const given = options.rendezvous !== undefined && launcher !== "env" && /^[^:\s]+$/.test(options.rendezvous) && !/^\d+$/.test(options.rendezvous) ? `${options.rendezvous}:0` : options.rendezvous;
  const where = given ?? `127.0.0.1:${launcher === "env" ? DEFAULT_RENDEZVOUS_PORT : 0}`;
  const address = (launcher !== "env" && /:0$/.test(where) ? { ...parseHostPort(where.replace(/:0$/, ":1"))!, port: 0 } : undefined) ?? parseHostPort(where) ?? (/^\d{1,5}$/.test(where) && Number(where) <= 65535 ? { host: "127.0.0.1", port: Number(where) } : undefined);
  if (!address) throw new UsageError(`%%distributed: --rendezvous ${JSON.stringify(where)} is not HOST:PORT (e.g. 0.0.0.0:${DEFAULT_RENDEZVOUS_PORT}) or a port`, "--rendezvous");
  const tls = rendezvousTls(options);
  if (!isLoopback(address.host) && !tls && !options.insecure) {
    throw new UsageError(
      `%%distributed: refusing to listen on --rendezvous ${where}, which is not a loopback address, without TLS: the control connections would be readable on the network; give --tls-cert FILE --tls-key FILE (the agents then pass --tls-ca or --tls-fingerprint), or pass --insecure`,
      "--rendezvous",
    );
  }
  const tokenFile = options.tokenFile ?? defaultTokenFile();
  if (options.tokenFile === undefined && !existsSync(tokenFile)) {
    throw new UsageError(`%%distributed --launcher ${launcher}: the agents prove they hold a token: pass --token-file FILE or create ${tokenFile} (mode 600), and start the agents with the same file`, "--token-file");
  }
  // Read now: a missing or loose token file is refused before the kernel listens.
  const token = readTokenFile(tokenFile, "--token-file");
  // Slurm or mpirun on PATH, an allocation or --slurm, --hosts or --mpi: refused before the kernel listens.
  const starter = launcher === "env" ? undefined : planAgentStarter(options, launcher as "slurm" | "mpi", tokenFile, tls);
  const timeoutMs = (options.rendezvousTimeoutSeconds ?? 60) * 1000;
  // The ranks' connections between hosts: encrypted when asked, or by default when the rendezvous serves TLS.
  const dataTls = options.dataTls === "on" || ((options.dataTls ?? "auto") === "auto" && tls !== undefined);
  const shape: GroupShape = {
    size: options.workers,
    backend: "hosts",
    ...common,
    // The rendezvous and its flags stand for the hosts: a change of either starts a new group.
    hosts: [`--launcher ${launcher}`, ...(starter ? [starter.shapeKey] : []), `--rendezvous ${address.host}:${address.port}`, ...(tls ? [`--tls-cert ${options.tlsCert}`] : []), ...(options.insecure ? ["--insecure"] : []), ...(options.dataTls === undefined ? [] : [`--data-tls ${options.dataTls}`])].join(" "),
    ...(options.tokenFile === undefined ? {} : { tokenFile: options.tokenFile }),
  };
  const log = (line: string) => process.stderr.write(`distlab rendezvous ${new Date().toISOString()} ${line}\n`);
  return {
    shape,
    start: (onEvent) =>
      createHostGroup(shape, onEvent, {
        entries: [],
        launcher: "agent",
        agentCommand: "distlab",
        version: packageVersion(),
        dataTls,
        rendezvous: {
          open: async () => {
            const rendezvous = await Rendezvous.listen({ ...address, token, version: packageVersion(), ...(tls ? { tls } : {}), log });
            if (starter) rendezvous.attach(starter.create(rendezvous.address, log));
            return rendezvous;
          },
          timeoutMs,
        },
      }),
  };
}
