/**
 * `%%distributed --launcher env --rendezvous HOST:PORT`: the kernel listens
 * and agents dial in (`distlab agent --connect`, agent-dial.ts), for
 * schedulers that place agents where the kernel cannot know. Each connection
 * runs the kernel's side of the one handshake (AgentLink.authenticate): the
 * kernel speaks first although it accepted the socket, and the agent must
 * prove the token before anything else is read. The agent's challenge
 * announces which agent it is (index of world, from the scheduler's
 * variables, rendezvous-env.ts); `admit` refuses an index out of range,
 * taken, or a world that disagrees with the agents already in.
 *
 * The listener stays open for the group's life, so an agent whose connection
 * ended can dial in again and the next cell waits for it (`gather`).
 * Unauthenticated peers cost a handshake each, at most PENDING_HANDSHAKES at
 * once; frames are size-limited by the handshake's reader.
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { UsageError } from "../errors";
import { AgentLink } from "./agent-link";
import type { Challenge } from "./handshake";
import { HANDSHAKE_TIMEOUT_MS } from "./handshake";

/** Most handshakes in progress at once; more connections are closed at once. */
const PENDING_HANDSHAKES = 64;

/** A rendezvous that cannot start, an agent that never came, an interrupted wait: names --rendezvous. */
export class RendezvousError extends UsageError {
  constructor(message: string) {
    super(message, "--rendezvous");
  }
}

/** The user interrupted the wait for agents; the agents already in stay for the next cell. */
export class RendezvousInterrupted extends Error {
  override readonly name = "InterruptedError";
  constructor(message: string) {
    super(message);
    // The traceback a notebook shows: the message, not the kernel's frames.
    this.stack = `${this.name}: ${message}`;
  }
}

export interface RendezvousOptions {
  host: string;
  port: number;
  token: Buffer;
  version: string;
  /** The certificate chain and key (PEM) the kernel serves TLS with (--tls-cert, --tls-key). */
  tls?: { cert: Buffer; key: Buffer };
  /** One line per accepted or refused agent, for the kernel's log. */
  log: (line: string) => void;
}

/**
 * What starts the agents for `--launcher slurm|mpi` (slurm-launcher.ts, mpi-launcher.ts): the
 * rendezvous starts it when a gather finds agents missing and it is not running, shows its state
 * on the progress line, ends the gather with its failure, and stops it when the rendezvous closes.
 */
export interface AgentStarter {
  /** Starts the agents unless they are being started or running; `changed` wakes the gather when the state below changes. */
  ensureStarted(changed: () => void): Promise<void>;
  /** Where the start is: `job 12 queued (Resources)`, `srun step running`; undefined when nothing to say. */
  state(): string | undefined;
  /** Why the agents cannot come (sbatch refused, the job or srun ended): the error ends the gather. */
  failure(): Error | undefined;
  /** While a gather waits the starter may poll its scheduler; off when it ends. */
  watch(on: boolean): void;
  /** Cancels the job or ends the step; called once, when the rendezvous closes. */
  stop(): void;
}

/** What `gather` reports while it waits: a line for the cell, replaced by the next. */
export interface GatherProgress {
  (line: string): void;
}

export class Rendezvous {
  /** Live links by announced index. */
  private readonly links = new Map<number, AgentLink>();
  /** The number of agents, fixed by the first agent admitted. */
  private world?: number;
  private pending = 0;
  private readonly wakers = new Set<() => void>();
  /** Refusals since the current gather began, shown under the cell. */
  private refusals: string[] = [];
  private closed = false;
  private starter?: AgentStarter;

  private constructor(
    private readonly server: net.Server,
    readonly address: string,
    private readonly options: RendezvousOptions,
  ) {}

  static async listen(options: RendezvousOptions): Promise<Rendezvous> {
    let rendezvous: Rendezvous | undefined;
    const onSocket = (socket: net.Socket) => rendezvous?.accept(socket);
    const server = options.tls ? tls.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: "TLSv1.2" }, onSocket) : net.createServer(onSocket);
    server.on("tlsClientError", (error, socket) => options.log(`refused ${socket.remoteAddress}:${socket.remotePort}: TLS handshake failed (${error.message})`));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port, options.host, () => resolve());
      });
    } catch (error) {
      throw new RendezvousError(`%%distributed --rendezvous ${options.host}:${options.port}: cannot listen there: ${(error as Error).message}`);
    }
    const bound = server.address() as net.AddressInfo;
    const address = `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
    rendezvous = new Rendezvous(server, address, options);
    options.log(`rendezvous listening on ${address} (${options.tls ? "TLS" : "no TLS"})`);
    return rendezvous;
  }

  /** `--launcher slurm|mpi`: the starter a gather runs when agents are missing; stopped by `close`. */
  attach(starter: AgentStarter): void {
    this.starter = starter;
  }

  /** Indices 0..world-1 that have no live link (undefined while no agent has said how many there are). */
  missing(): number[] | undefined {
    if (this.world === undefined) return undefined;
    return Array.from({ length: this.world }, (_, index) => index).filter((index) => !this.links.get(index) || this.links.get(index)!.closed);
  }

  /**
   * Waits until every agent of the world has a live link and returns them in index order. Reports
   * "k of n agents connected" through `progress` as agents come; rejects with a RendezvousError
   * naming the missing indices when `timeoutMs` passes, or at once when `interrupt` aborts. Agents
   * already in stay connected for the next gather either way.
   */
  async gather(timeoutMs: number, interrupt?: AbortSignal, progress?: GatherProgress): Promise<AgentLink[]> {
    const starter = this.starter;
    starter?.watch(true);
    try {
      return await this.gatherLinks(timeoutMs, interrupt, progress);
    } finally {
      starter?.watch(false);
    }
  }

  private async gatherLinks(timeoutMs: number, interrupt?: AbortSignal, progress?: GatherProgress): Promise<AgentLink[]> {
    const deadline = Date.now() + timeoutMs;
    this.refusals = [];
    let shown = "";
    const missingAtStart = this.missing();
    if (this.starter && (missingAtStart === undefined || missingAtStart.length > 0)) await this.starter.ensureStarted(() => this.wake());
    for (;;) {
      const missing = this.missing();
      if (missing !== undefined && missing.length === 0) {
        const links = Array.from({ length: this.world! }, (_, index) => this.links.get(index)!);
        progress?.(`distlab: ${links.length} of ${links.length} agents connected at ${this.address}: ${this.describe()}`);
        return links;
      }
      const failure = this.starter?.failure();
      if (failure) throw failure;
      const state = this.starter?.state();
      const line = `distlab: ${state === undefined ? "" : `${state}; `}waiting for agents at ${this.address}: ${this.status()}${this.refusals.length > 0 ? `\n${this.refusals.map((refusal) => `  ${refusal}`).join("\n")}` : ""}`;
      if (line !== shown) progress?.((shown = line));
      if (interrupt?.aborted) throw new RendezvousInterrupted(`%%distributed: interrupted while waiting for agents at ${this.address} (${this.status()}); the agents that dialled in stay connected for the next cell`);
      const left = deadline - Date.now();
      if (left <= 0) throw new RendezvousError(this.timeoutMessage(timeoutMs));
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          interrupt?.removeEventListener("abort", done);
          this.wakers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        interrupt?.addEventListener("abort", done, { once: true });
        this.wakers.add(done);
      });
    }
  }

  close(): void {
    if (!this.closed) this.starter?.stop();
    this.closed = true;
    this.server.close();
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.wake();
  }

  private wake(): void {
    for (const waker of [...this.wakers]) waker();
  }

  private status(): string {
    const live = [...this.links.values()].filter((link) => !link.closed).length;
    return this.world === undefined ? "no agent connected yet" : `${live} of ${this.world} agents connected`;
  }

  private describe(): string {
    return [...this.links.entries()].filter(([, link]) => !link.closed).sort(([a], [b]) => a - b).map(([index, link]) => `agent ${index} ${link.hostname} (${link.slots} slot${link.slots === 1 ? "" : "s"})`).join(", ");
  }

  private timeoutMessage(timeoutMs: number): string {
    const seconds = `${timeoutMs / 1000} s`;
    const missing = this.missing();
    const refused = `${this.refusals.length > 0 ? `; refused meanwhile: ${this.refusals.join("; ")}` : ""}${this.starter?.state() === undefined ? "" : `; ${this.starter.state()}`}`;
    if (missing === undefined) {
      return `%%distributed --rendezvous ${this.address}: no agent dialled in within ${seconds} (--rendezvous-timeout)${refused}${this.starter ? "" : `; start the agents with \`distlab agent --connect ${this.address} --token-file FILE\` and the scheduler's variables (docs/launchers.md)`}`;
    }
    const names = missing.length === 1 ? `agent ${missing[0]} of ${this.world} did not` : `agents ${missing.join(", ")} of ${this.world} did not`;
    return `%%distributed --rendezvous ${this.address}: ${names} dial in within ${seconds} (--rendezvous-timeout; connected: ${this.describe() || "none"})${refused}`;
  }

  private refused(peer: string, reason: string): void {
    const line = `refused ${peer}: ${reason}`;
    this.options.log(line);
    this.refusals.push(line);
    this.refusals.splice(0, Math.max(0, this.refusals.length - 5));
    this.wake();
  }

  private accept(socket: net.Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.pending >= PENDING_HANDSHAKES) {
      this.refused(peer, `${PENDING_HANDSHAKES} handshakes are in progress already`);
      socket.destroy();
      return;
    }
    this.pending += 1;
    socket.setNoDelay(true);
    const admit = (challenge: Challenge): string | undefined => {
      const announced = challenge.rendezvous;
      if (announced === undefined) return "it announced no agent index (start it with `distlab agent --connect` and RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS or JOB_COMPLETION_INDEX/DISTLAB_WORLD_SIZE)";
      if (this.world !== undefined && announced.world !== this.world) {
        return `it announces ${announced.world} agents, but the agents already here announced ${this.world} (set the same world size on every agent)`;
      }
      if (announced.index >= announced.world) return `its index ${announced.index} is not below its world size ${announced.world}`;
      const held = this.links.get(announced.index);
      if (held && !held.closed) return `agent index ${announced.index} is connected already (from ${held.address}, ${held.hostname}); every agent needs its own index`;
      return undefined;
    };
    AgentLink.authenticate(socket, {
      address: peer,
      token: this.options.token,
      version: this.options.version,
      kernelAddress: socket.localAddress ?? "127.0.0.1",
      timeoutMs: HANDSHAKE_TIMEOUT_MS,
      admit,
      flag: "--rendezvous",
      onClose: (reason) => {
        this.options.log(`agent at ${peer} disconnected: ${reason}`);
        this.wake();
      },
    }).then(
      (link) => {
        this.pending -= 1;
        if (this.closed) return link.close();
        const { index, world } = link.announced!;
        // Checked again: two agents of one index may have passed `admit` while both were in their handshakes.
        const clash = admit({ rendezvous: link.announced } as Challenge);
        if (clash !== undefined) {
          this.refused(peer, clash);
          link.close();
          return;
        }
        this.world = world;
        this.links.set(index, link);
        this.options.log(`accepted agent ${index} of ${world} from ${peer} (${link.hostname}, ${link.slots} slots)`);
        this.wake();
      },
      (error: Error) => {
        this.pending -= 1;
        this.refused(peer, error.message.replace(/^--rendezvous: agent at \S+: /, ""));
      },
    );
  }
}
