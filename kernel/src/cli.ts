#!/usr/bin/env node
/**
 * The `distlab` command:
 *   distlab install [--user | --sys-prefix | --prefix P]   register the kernelspec
 *   distlab doctor                                        what this machine offers, and fixes
 *   distlab kernel --connection-file F                    run the kernel (Jupyter calls this)
 *   distlab agent --token-file F [--listen H:P]           run ranks for kernels holding the token
 *   distlab agent --token-file F --connect H:P|env       dial a kernel's rendezvous instead
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { installKernelspec, installLabextension, type InstallScope } from "./install";
import { availableParallelism } from "node:os";
import { packageVersion, runKernel } from "./kernel-main";
import { AgentRefusal, serveStdio, startAgent } from "./hosts/agent";
import { DEFAULT_AGENT_PORT } from "./hosts/host-spec";
import { readTokenFile } from "./hosts/token";
import { DialRefusal, dialKernel } from "./hosts/agent-dial";
import { normalizeFingerprint, type AgentTls } from "./hosts/agent-link";
import { readRendezvousEnv, type RendezvousEnv } from "./hosts/rendezvous-env";
import { diagnose, formatDiagnosis } from "./doctor/diagnose";
import { probeMachine } from "./doctor/probes";
import { readFileSync } from "node:fs";
import { buildMissingSnapshots } from "./repl/compiler-snapshot";
import { DeclarationChain } from "./repl/declaration-chain";
import { v8StartFlags } from "./v8-start-flags";

const USAGE = `usage:
  distlab install [--user | --sys-prefix | --prefix PREFIX]
      Register the "distlab" kernelspec with Jupyter (default: --user), and the
      JupyterLab timeline extension when this install carries it (the npm package does).
  distlab doctor
      Say what this machine offers (Node, TF.js backends, GPUs, launchers,
      Jupyter) and the command that fixes each missing piece; exit status 0
      when the basics work (Node 20+, a TF.js backend, Jupyter with the kernelspec).
  distlab kernel --connection-file FILE
      Run the kernel; Jupyter starts this through the kernelspec.
  distlab snapshots
      Build the compiler snapshots for kernels started in the current folder (a
      notebook's), so that even the first one there has its TypeScript programs in a
      fraction of a second; up-to-date ones are kept. Kernels build them on their own
      once quiet; this does it now. Cache: DISTLAB_COMPILER_SNAPSHOT_DIR, else
      ~/.cache/distlab/compiler-snapshots.
  distlab agent --token-file FILE [--listen HOST:PORT] [--slots N]
                [--tls-cert FILE --tls-key FILE] [--insecure]
      Run ranks for kernels that prove they hold the token in FILE (mode 600):
      %%distributed --hosts HOST:PORT --token-file FILE [--tls-ca F | --tls-fingerprint SHA256].
      Listens on 127.0.0.1:${DEFAULT_AGENT_PORT} by default; a non-loopback address
      needs TLS (--tls-cert, --tls-key) or --insecure. --slots: most ranks (default: CPU count).
  distlab agent --token-file FILE --connect HOST:PORT|env [--slots N]
                [--tls-ca FILE | --tls-fingerprint SHA256] [--insecure] [--connect-timeout SECONDS]
      Dial the kernel of %%distributed --launcher env --rendezvous HOST:PORT instead
      of listening, retrying until --connect-timeout (default 60 s). Which agent this
      is comes from the scheduler's variables: RANK/WORLD_SIZE (torchrun),
      SLURM_PROCID/SLURM_NTASKS (srun), JOB_COMPLETION_INDEX/DISTLAB_WORLD_SIZE
      (Kubernetes Indexed Job). --connect env (or --connect with no address) takes the
      address from DISTLAB_RENDEZVOUS, else MASTER_ADDR:MASTER_PORT. Exits when the
      kernel closes the group. A non-loopback kernel needs TLS or --insecure.
  distlab agent --stdio [--slots N] [--data-relay SOCKET --data-inbound SOCKET]
      Serve one kernel over stdin/stdout, the token being stdin's first line;
      the kernel's SSH launcher runs this. Exits (stopping its ranks) when stdin ends.
  distlab --help | --version`;

class UsageError extends Error {
  override name = "UsageError";
}

function parse(command: string, args: string[], options: NonNullable<ParseArgsConfig["options"]>) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(`distlab ${command}: ${(error as Error).message}`);
  }
}

function installScope(args: string[]): InstallScope {
  const values = parse("install", args, {
    user: { type: "boolean" },
    "sys-prefix": { type: "boolean" },
    prefix: { type: "string" },
  });
  const chosen = ["user", "sys-prefix", "prefix"].filter((name) => values[name] !== undefined);
  if (chosen.length > 1) {
    throw new UsageError(`distlab install: choose one of --user, --sys-prefix, --prefix (got ${chosen.map((name) => `--${name}`).join(", ")})`);
  }
  if (values["sys-prefix"]) return { kind: "sys-prefix" };
  if (typeof values.prefix === "string") {
    if (values.prefix === "") throw new UsageError("distlab install: --prefix needs a directory");
    return { kind: "prefix", prefix: values.prefix };
  }
  return { kind: "user" };
}

async function runAgent(given: string[]): Promise<void> {
  // `--connect` with no address (last, or followed by another flag) means `--connect env`.
  const args = given.flatMap((word, index) => (word === "--connect" && (index === given.length - 1 || given[index + 1]!.startsWith("--")) ? [word, "env"] : [word]));
  const values = parse("agent", args, {
    listen: { type: "string" },
    "token-file": { type: "string" },
    slots: { type: "string" },
    insecure: { type: "boolean" },
    stdio: { type: "boolean" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    connect: { type: "string" },
    "connect-timeout": { type: "string" },
    "tls-ca": { type: "string" },
    "tls-fingerprint": { type: "string" },
    "data-relay": { type: "string" },
    "data-inbound": { type: "string" },
  });
  const slots = values.slots === undefined ? availableParallelism() : Number(values.slots);
  if (!Number.isInteger(slots) || slots < 1) throw new UsageError(`distlab agent: --slots ${JSON.stringify(values.slots)} is not a positive integer`);
  const log = (line: string) => process.stderr.write(`distlab agent ${new Date().toISOString()} ${line}\n`);
  if (values.stdio === true) {
    const clash = ["listen", "token-file", "insecure", "tls-cert", "tls-key"].filter((name) => values[name] !== undefined);
    if (clash.length > 0) throw new UsageError(`distlab agent --stdio: ${clash.map((name) => `--${name}`).join(", ")} do not apply (the token is the first line of stdin)`);
    let served: Awaited<ReturnType<typeof serveStdio>>;
    try {
      const relay = values["data-relay"], inbound = values["data-inbound"];
      if ((relay === undefined) !== (inbound === undefined)) throw new UsageError("distlab agent --stdio: --data-relay and --data-inbound go together (--data-via ssh)");
      served = await serveStdio({ slots, version: packageVersion(), log, ...(typeof relay === "string" && typeof inbound === "string" ? { dataRelay: { relay, inbound } } : {}) });
    } catch (error) {
      if (error instanceof AgentRefusal) throw new UsageError(error.message);
      throw error;
    }
    await served.whenDone;
    log("the kernel's stream ended; exiting");
    process.stderr.write("", () => process.exit(0));
    return;
  }
  const tokenFile = values["token-file"];
  if (typeof tokenFile !== "string" || tokenFile === "") throw new UsageError("distlab agent: --token-file FILE is required");
  if (values.connect !== undefined) {
    if (values.listen !== undefined) throw new UsageError("distlab agent: --connect and --listen exclude each other (dial the kernel, or wait for it)");
    const clash = ["tls-cert", "tls-key"].filter((name) => values[name] !== undefined);
    if (clash.length > 0) throw new UsageError(`distlab agent --connect: ${clash.map((name) => `--${name}`).join(", ")} do not apply (the kernel serves TLS; check its certificate with --tls-ca FILE or --tls-fingerprint SHA256)`);
    await runDialAgent(values, tokenFile, slots, log);
    return;
  }
  const kernelTlsFlags = ["tls-ca", "tls-fingerprint", "connect-timeout"].filter((name) => values[name] !== undefined);
  if (kernelTlsFlags.length > 0) throw new UsageError(`distlab agent: ${kernelTlsFlags.map((name) => `--${name}`).join(", ")} ${kernelTlsFlags.length === 1 ? "applies" : "apply"} only with --connect`);
  const listen = typeof values.listen === "string" ? values.listen : `127.0.0.1:${DEFAULT_AGENT_PORT}`;
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d+)$/.exec(listen);
  if (!match || Number(match[2]) > 65535) throw new UsageError(`distlab agent: --listen ${JSON.stringify(listen)} is not HOST:PORT`);
  let token: Buffer;
  try {
    token = readTokenFile(tokenFile, "--token-file");
  } catch (error) {
    throw new UsageError(`distlab agent: ${(error as Error).message}`);
  }
  const tls = readTlsFiles(values["tls-cert"], values["tls-key"]);
  try {
    await startAgent({ host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]), token, slots, version: packageVersion(), insecure: values.insecure === true, log, ...(tls ? { tls } : {}) });
  } catch (error) {
    if (error instanceof AgentRefusal) throw new UsageError(error.message);
    throw error;
  }
}

/** `distlab agent --connect`: dials the kernel until it accepts this agent, serves it, then exits. */
async function runDialAgent(values: Record<string, unknown>, tokenFile: string, slots: number, log: (line: string) => void): Promise<void> {
  const connect = values.connect as string;
  let rendezvous: RendezvousEnv;
  try {
    rendezvous = readRendezvousEnv(process.env, connect === "" || connect === "env" ? undefined : connect);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const timeoutText = values["connect-timeout"] as string | undefined;
  const timeoutSeconds = timeoutText === undefined ? 60 : Number(timeoutText);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`distlab agent: --connect-timeout ${JSON.stringify(timeoutText)} is not a positive number of seconds`);
  let token: Buffer;
  try {
    token = readTokenFile(tokenFile, "--token-file");
  } catch (error) {
    throw new UsageError(`distlab agent: ${(error as Error).message}`);
  }
  const tls = kernelTls(values["tls-ca"], values["tls-fingerprint"]);
  log(`rendezvous from ${rendezvous.source}: agent ${rendezvous.index} of ${rendezvous.world}${rendezvous.localIndex === undefined ? "" : ` (local index ${rendezvous.localIndex})`}`);
  try {
    await dialKernel({
      host: rendezvous.host, port: rendezvous.port, token, slots, version: packageVersion(), log,
      insecure: values.insecure === true, connectTimeoutMs: timeoutSeconds * 1000,
      rendezvous: { index: rendezvous.index, world: rendezvous.world },
      ...(tls ? { tls } : {}),
    });
  } catch (error) {
    if (error instanceof DialRefusal) throw new AgentFailure(error.message);
    throw error;
  }
  process.stderr.write("", () => process.exit(0));
}

/** `--tls-ca FILE` (a PEM CA) or `--tls-fingerprint SHA256`, not both: how a dialling agent checks the kernel. */
function kernelTls(ca: unknown, fingerprint: unknown): AgentTls | undefined {
  if (ca !== undefined && fingerprint !== undefined) throw new UsageError("distlab agent: give --tls-ca or --tls-fingerprint, not both");
  if (typeof fingerprint === "string") {
    const normalized = normalizeFingerprint(fingerprint);
    if (!normalized) throw new UsageError(`distlab agent: --tls-fingerprint ${fingerprint}: not a SHA-256 fingerprint (64 hex digits, colons allowed)`);
    return { fingerprint: normalized };
  }
  if (typeof ca !== "string") return undefined;
  let text: Buffer;
  try {
    text = readFileSync(ca);
  } catch (error) {
    throw new UsageError(`distlab agent: --tls-ca ${ca}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new UsageError(`distlab agent: --tls-ca ${ca}: holds no PEM certificate`);
  return { ca: text };
}

/** The agent ran but could not do its work (no kernel accepted it): exit status 1, no usage text. */
class AgentFailure extends Error {
  override name = "AgentFailure";
}

/** `--tls-cert` and `--tls-key` go together; each file must be readable PEM. */
function readTlsFiles(cert: unknown, key: unknown): { cert: Buffer; key: Buffer } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (typeof cert !== "string" || typeof key !== "string") throw new UsageError(`distlab agent: --tls-cert FILE and --tls-key FILE go together (got only ${cert === undefined ? "--tls-key" : "--tls-cert"})`);
  const read = (flag: string, path: string): Buffer => {
    let text: Buffer;
    try {
      text = readFileSync(path);
    } catch (error) {
      throw new UsageError(`distlab agent: ${flag} ${path}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
    }
    if (!text.includes("-----BEGIN ")) throw new UsageError(`distlab agent: ${flag} ${path}: not a PEM file`);
    return text;
  };
  return { cert: read("--tls-cert", cert), key: read("--tls-key", key) };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "install": {
      const scope = installScope(rest);
      const dir = installKernelspec(scope);
      process.stdout.write(`Installed the distlab kernelspec in ${dir}\n`);
      const extension = installLabextension(scope);
      if (extension !== undefined) process.stdout.write(`Installed the JupyterLab timeline extension in ${extension}\n`);
      return 0;
    }
    case "doctor": {
      parse("doctor", rest, {});
      const diagnosis = diagnose(await probeMachine());
      process.stdout.write(formatDiagnosis(diagnosis));
      return diagnosis.basicsOk ? 0 : 1;
    }
    case "kernel": {
      const values = parse("kernel", rest, { "connection-file": { type: "string", short: "f" } });
      const file = values["connection-file"];
      if (typeof file !== "string" || file === "") throw new UsageError("distlab kernel: --connection-file FILE is required");
      await runKernel(file);
      return -1; // keeps running until shutdown_request or SIGTERM
    }
    case "snapshots": {
      parse("snapshots", rest, {});
      const chains = [DeclarationChain.ranks(), DeclarationChain.notebook()].map((chain) => ({ name: chain.name, prelude: chain.prelude, globalNames: chain.globalNames }));
      const allUsable = await buildMissingSnapshots(chains, v8StartFlags(), (line) => process.stdout.write(`${line}\n`));
      return allUsable ? 0 : 1;
    }
    case "agent":
      await runAgent(rest);
      return -1; // serves until killed
    case "--version":
    case "-V":
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(`${USAGE}\n`);
      return 0;
    case undefined:
      throw new UsageError("distlab: missing command");
    default:
      throw new UsageError(`distlab: unknown command ${JSON.stringify(command)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const usage = error instanceof UsageError;
    // Exit, not just set the code: a kernel that failed to start (a port taken between the client
    // choosing it and the kernel binding it) may have started its control thread already, which
    // would keep a process that answers nothing alive until the client gives up.
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${usage ? `${USAGE}\n` : ""}`, () => process.exit(usage ? 2 : 1));
  },
);
