/**
 * `--launcher ssh`: starts an agent on a host through the system's OpenSSH
 * client and talks to it over that ssh channel. ssh does the work it is
 * trusted for: the user's ~/.ssh/config and keys, agent forwarding or not,
 * known_hosts. The launcher only adds BatchMode=yes (never a password or
 * host-key prompt, which nobody could answer from a kernel) and never turns
 * host-key checking off.
 *
 *   kernel ──ssh [-F config] [-p port] -T -o BatchMode=yes DEST 'distlab agent --stdio'──▶ agent
 *   stdin:  token line, then handshake and control frames (kernel -> agent)
 *   stdout: handshake and control frames (agent -> kernel)
 *   stderr: the agent's log and ssh's own messages, kept for error messages
 *
 * The token is a fresh random one for each launch and travels as the first
 * line of the channel's stdin: never in argv (visible in ps on both hosts)
 * nor the environment. Closing the link closes ssh's stdin; the agent sees
 * stdin end, stops its ranks and exits, and ssh exits with it. If the kernel
 * dies, the pipe closes the same way, so no agent outlives its kernel.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Duplex } from "node:stream";
import { AgentLink } from "./agent-link";

/** How long starting an agent over ssh may take: connecting, logging in, starting node (milliseconds). */
export const SSH_LAUNCH_TIMEOUT_MS = 30_000;
/** Seconds ssh waits for the TCP connection (ssh's ConnectTimeout). */
export const SSH_CONNECT_TIMEOUT_S = 10;
/** How long an ssh client may linger after its channel was closed before it is killed (milliseconds). */
const SSH_EXIT_GRACE_MS = 5000;
/** ssh and agent stderr lines kept for error messages. */
const KEPT_LINES = 20;

export interface SshLaunchOptions {
  /** `[user@]host`, or a Host alias of the ssh config. */
  destination: string;
  /** ssh port; undefined: what the ssh config says (22 by default). */
  port?: number;
  /** `ssh -F FILE`; undefined: the user's ~/.ssh/config. */
  sshConfig?: string;
  /** The command that runs distlab on the host (`distlab`, or a path to it). */
  agentCommand: string;
  /** Slots of the agent (`--slots`); undefined: its CPU count. */
  slots?: number;
  version: string;
  onClose?: (reason: string) => void;
  /**
   * `--data-via ssh` (data-relay.ts): Unix sockets forwarded by this session. `remoteRelay` on the
   * host leads to `kernelRelay` here (-R); `kernelInbound` here leads to `remoteInbound` there (-L).
   */
  dataRelay?: { remoteRelay: string; kernelRelay: string; kernelInbound: string; remoteInbound: string };
}

/** The ssh client's argv for `options` (no token in it: the token goes over stdin). */
export function sshArguments(options: SshLaunchOptions): string[] {
  const relay = options.dataRelay;
  const remote = [
    options.agentCommand, "agent", "--stdio",
    ...(options.slots === undefined ? [] : ["--slots", String(options.slots)]),
    ...(relay ? ["--data-relay", relay.remoteRelay, "--data-inbound", relay.remoteInbound] : []),
  ].join(" ");
  return [
    "-T",
    "-o", "BatchMode=yes",
    "-o", `ConnectTimeout=${SSH_CONNECT_TIMEOUT_S}`,
    // A link that goes silent ends the channel (and so the agent) within about 6 s instead of
    // holding it forever; sshd answers these itself, so a busy agent does not trip them.
    "-o", "ServerAliveInterval=2",
    "-o", "ServerAliveCountMax=3",
    ...(options.sshConfig === undefined ? [] : ["-F", options.sshConfig]),
    ...(options.port === undefined ? [] : ["-p", String(options.port)]),
    // a forward ssh cannot make fails the launch instead of leaving the data with no way through
    ...(relay ? ["-o", "ExitOnForwardFailure=yes", "-R", `${relay.remoteRelay}:${relay.kernelRelay}`, "-L", `${relay.kernelInbound}:${relay.remoteInbound}`] : []),
    "--",
    options.destination,
    remote,
  ];
}

/** Starts `distlab agent --stdio` on the host and authenticates it; every failure is a HostsError naming the host and saying what ssh said. */
export async function launchOverSsh(options: SshLaunchOptions): Promise<AgentLink> {
  const name = options.port === undefined ? options.destination : `${options.destination}:${options.port}`;
  // A session of its own: Jupyter's interrupt signals the kernel's whole process group, and an ssh
  // client that got that SIGINT would end the channel and with it every rank's state on the host.
  // Its end stays tied to the kernel's through the stdin pipe.
  const child = spawn("ssh", sshArguments(options), { stdio: ["pipe", "pipe", "pipe"], detached: true });
  const kept: string[] = [];
  let partial = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop()!;
    kept.push(...lines.filter((line) => line.trim() !== ""));
    kept.splice(0, Math.max(0, kept.length - KEPT_LINES));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once("error", (error) => resolve({ code: null, signal: null, error }));
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  child.stdin.on("error", () => undefined);
  const token = Buffer.from(randomBytes(32).toString("hex"), "utf8");
  child.stdin.write(Buffer.concat([token, Buffer.from("\n")]));
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  // The channel's end: close ssh's stdin, and kill ssh if it does not follow within the grace.
  stream.once("close", () => {
    child.stdin.destroy();
    const timer = setTimeout(() => child.kill("SIGTERM"), SSH_EXIT_GRACE_MS);
    timer.unref();
    void exited.then(() => clearTimeout(timer));
  });
  const explain = async (): Promise<string> => {
    const end = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000))]);
    if (partial.trim() !== "") kept.push(partial.trim());
    const said = kept.filter((line) => !line.startsWith("distlab agent ") || /refus|error|Error/.test(line));
    const how = end === undefined ? "ssh is still running" : end.error ? `ssh did not start: ${end.error.message}` : `ssh exited with ${end.signal ?? `code ${end.code}`}`;
    return `; ${how}${said.length > 0 ? `: ${said.join(" | ")}` : ""}${sshHint(said.join("\n"), end?.code ?? null, options)}`;
  };
  return AgentLink.authenticate(stream, {
    address: name,
    token,
    version: options.version,
    kernelAddress: "127.0.0.1",
    timeoutMs: SSH_LAUNCH_TIMEOUT_MS,
    explain,
    closeReason: (reason) => {
      const said = kept.filter((line) => !line.startsWith("distlab agent ")).at(-1);
      return said === undefined ? `the ssh channel closed (${reason})` : `the ssh channel closed: ${said}`;
    },
    ...(options.onClose ? { onClose: options.onClose } : {}),
  });
}

/** What to do about the usual ways an ssh launch fails. */
function sshHint(said: string, code: number | null, options: SshLaunchOptions): string {
  if (/Permission denied|password|passphrase/i.test(said)) {
    return ` (ssh runs with BatchMode=yes, so it cannot ask for a password: set up key login to ${options.destination}, e.g. ssh-copy-id, or load the key into ssh-agent)`;
  }
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(said)) {
    return ` (host-key checking stays on: check the host's key and add it to known_hosts, e.g. by running \`ssh ${options.destination}\` once)`;
  }
  if (code === 127 || /command not found|No such file/i.test(said)) {
    return ` (the host has no \`${options.agentCommand}\`: install distlab there, or name its path with --agent-command)`;
  }
  if (code === 255) return ` (ssh could not reach or log in to ${options.destination})`;
  return "";
}
