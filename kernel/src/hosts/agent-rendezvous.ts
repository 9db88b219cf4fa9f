/**
 * `--ssh-tunnel`: the ranks' rendezvous runs on the first agent's host
 * instead of in the kernel, for hosts behind a login node. The kernel reaches
 * the hosts only through ssh (the user's ProxyJump), and the hosts cannot
 * reach the kernel at all; they can reach each other (one cluster network).
 * Control already rides the ssh channel, so only the rendezvous had to move:
 *
 *   kernel ──ssh (ProxyJump login)──▶ agent on c1: rendezvous-open {id, size, world, secret, tls}
 *          ◀─────────────────────────            rendezvous-opened {id, address: "c1addr:port"}
 *   ranks on c1, c2 ── register at c1addr:port, then connect rank to rank on the cluster network
 *   kernel ──────────────────────────▶ agent on c1: rendezvous-close {id} once the world formed
 *
 * The kernel still makes the world's id and secret, and hands them to the
 * agent over the authenticated control channel, as it hands them to each
 * rank: the rendezvous on the host runs the same handshake as the kernel's
 * (comm/tcp-world.ts) and learns nothing a rank of that world does not.
 * Messages use rank -3, which no rank has (rank -1 is the link's probes and heartbeat, -2 its clock pings).
 */
import { freshWorldCredentials, startTcpRendezvous, type Rendezvous } from "../comm/tcp-world";
import type { KernelWorld } from "../cluster/comm-world";
import type { TcpWorldAddress } from "../cluster/rank-messages";
import type { AgentLink } from "./agent-link";
import type { FromAgent, ToAgent } from "./control";
import { HostsError } from "./host-spec";

/** The rank number of rendezvous messages on the control connection. */
export const RENDEZVOUS_RANK = -3;
/** How long the kernel waits for an agent to open a rendezvous (milliseconds). */
const OPEN_TIMEOUT_MS = 15_000;

let nextId = 1;

/** Kernel side: a TCP world whose rendezvous the agent of `link` runs, on the address its ranks listen on. */
export async function createAgentTcpWorld(link: AgentLink, size: number, options: { tls?: boolean } = {}): Promise<KernelWorld> {
  const tls = options.tls === true;
  const { world, secret } = freshWorldCredentials();
  const id = nextId++;
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new HostsError(`--ssh-tunnel: the agent at ${link.address} did not open the ranks' rendezvous within ${OPEN_TIMEOUT_MS / 1000} s`));
    }, OPEN_TIMEOUT_MS);
    const stop = link.listen(RENDEZVOUS_RANK, (message: FromAgent) => {
      if (message.type === "exit") {
        clearTimeout(timer);
        stop();
        reject(new HostsError(`--ssh-tunnel: ${message.error ?? `the agent at ${link.address} went away`} before it opened the ranks' rendezvous`));
        return;
      }
      if (message.type !== "rendezvous-opened" || message.id !== id) return;
      clearTimeout(timer);
      stop();
      if (message.address === undefined) reject(new HostsError(`--ssh-tunnel: the agent at ${link.address} could not open the ranks' rendezvous: ${message.error ?? "no reason given"}`));
      else resolve(message.address);
    });
    link.send({ type: "rendezvous-open", rank: RENDEZVOUS_RANK, id, size, world, secret: new Uint8Array(secret), tls });
  });
  const tcp: TcpWorldAddress = { kind: "tcp", rendezvous: address, world, secret: secret.toString("hex"), tls };
  const close = () => {
    if (!link.closed) link.send({ type: "rendezvous-close", rank: RENDEZVOUS_RANK, id });
  };
  // Closing the rendezvous also ends the joins still waiting on it (a rank died while joining).
  return { address: tcp, cancel: () => undefined, formed: close };
}

/** Agent side: the rendezvous this agent runs for its kernel, by id; all closed with the session. */
export class AgentRendezvous {
  private readonly open = new Map<number, Rendezvous>();
  private ended = false;

  /** `host`: where the ranks of this host listen (the address the kernel reached it at). */
  constructor(
    private readonly host: string,
    private readonly reply: (message: FromAgent) => void,
    private readonly log: (line: string) => void,
  ) {}

  handle(message: Extract<ToAgent, { type: "rendezvous-open" | "rendezvous-close" }>): void {
    if (message.type === "rendezvous-close") {
      this.open.get(message.id)?.close();
      this.open.delete(message.id);
      return;
    }
    const { id, size, world, secret, tls } = message;
    if (!Number.isInteger(size) || size < 1 || typeof world !== "string" || !(secret instanceof Uint8Array) || secret.byteLength < 16) {
      this.reply({ type: "rendezvous-opened", rank: RENDEZVOUS_RANK, id, error: "a malformed rendezvous-open message" });
      return;
    }
    startTcpRendezvous(size, { host: this.host, tls: tls === true, credentials: { world, secret: Buffer.from(secret) }, onRefused: this.log }).then(
      (rendezvous) => {
        if (this.ended) return rendezvous.close();
        this.open.set(id, rendezvous);
        this.log(`opened the ranks' rendezvous for ${size} ranks at ${rendezvous.address}`);
        this.reply({ type: "rendezvous-opened", rank: RENDEZVOUS_RANK, id, address: rendezvous.address });
      },
      (error: Error) => this.reply({ type: "rendezvous-opened", rank: RENDEZVOUS_RANK, id, error: `cannot listen on ${this.host}: ${error.message}` }),
    );
  }

  closeAll(): void {
    this.ended = true;
    for (const rendezvous of this.open.values()) rendezvous.close();
    this.open.clear();
  }
}
