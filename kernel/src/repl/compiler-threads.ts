/**
 * The kernel's cell compiler: one worker thread per declaration chain
 * (the notebook's, the ranks'), each holding that chain's TypeScript
 * program; or, where the chain has a usable snapshot of its created
 * program, a process started from it (compiler-snapshot.ts), which has the
 * program in a fraction of the time, over the same messages.
 *
 * Creating a chain's program (lib and @types files; TensorFlow.js's types
 * for the ranks chain: about 900 files, 5 MB) is one to two seconds of CPU
 * that cannot be split. On the kernel's thread it held up every request
 * behind it, so it could only start after a quiet second, and a first cell
 * sent at once waited for all of it. On threads of their own the programs
 * are created from the kernel's start, side by side, while the kernel
 * binds its sockets and answers kernel_info; a first cell waits only for
 * what is left of its own chain's program, and the kernel answers
 * interrupts, completions of magics and comm messages meanwhile.
 *
 * The first chain's program (the ranks') is created from the kernel's start;
 * each later one only once no cell has run for WARM_WHEN_QUIET_MS. Created
 * during a cell, it took one of two cores from that cell's ranks: a 64 MiB
 * allReduce in a kernel's first `%%distributed -n 2` cell ran at a third of
 * its speed for the two seconds it took (docs/architecture.md).
 * Between cells a user types, so the program is there by the next one.
 *
 * Declarations stay with the DeclarationChain on the kernel's thread; each
 * request carries them, so a thread holds no state but its program and its
 * cache of compiled cells.
 */
import { extname, join } from "node:path";
import { Worker } from "node:worker_threads";
import type { CompletionInfo } from "tslab/dist/converter";
import type * as TS from "@tslab/typescript-for-tslab";
import type { CompiledCell } from "./cell-compiler";
import { declarationCell, type CellCompiling } from "./cell-compiling";
import { PROGRAM_CREATED, type CompilerReply, type CompilerRequest, type CompilerWorkerData } from "./compiler-messages";
import { DeclarationChain } from "./declaration-chain";
import { CompileError } from "./errors";
import { buildSnapshot, discardSnapshot, startFromSnapshot, usableSnapshot } from "./compiler-snapshot";
import type { ChildProcess } from "node:child_process";
import { workerExecArgv } from "../v8-start-flags";

/** Environment variable that, set to "0", leaves each chain's program to its first request. */
export const WARM_UP_ENV = "DISTLAB_WARM_UP";

// Same extension as this file: .js from kernel/dist, .ts when run from source under tsx.
const FROM_SOURCE = extname(__filename) === ".ts";
const WORKER_FILE = join(__dirname, `compiler-worker${extname(__filename)}`);

/** How long no cell may have run before a chain after the first is warmed, milliseconds. */
export const WARM_WHEN_QUIET_MS = 500;

/** A request before the thread numbers it: `Omit` applied to each member of the union. */
type Unnumbered<R> = R extends CompilerRequest ? Omit<R, "id"> : never;
type Request = Unnumbered<CompilerRequest>;

/** Where a chain's compiler runs: a worker thread, or a process started from a snapshot (compiler-snapshot.ts). */
interface CompilerChannel {
  post(request: CompilerRequest): void;
  /** Whether the compiler keeps the kernel alive (only while a request waits on it). */
  ref(): void;
  unref(): void;
  terminate(): void;
}

interface ChannelEvents {
  onReply(reply: CompilerReply): void;
  onStop(reason: string): void;
}

function threadChannel(chain: DeclarationChain, createProgram: boolean, heapMb: number | undefined, events: ChannelEvents): CompilerChannel {
  const workerData: CompilerWorkerData = { chain: plainChain(chain), createProgram };
  const options = { workerData, execArgv: workerExecArgv(), ...(heapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: heapMb } }) };
  const worker = FROM_SOURCE
    ? new Worker(`require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(WORKER_FILE)});`, { ...options, eval: true })
    : new Worker(WORKER_FILE, options);
  worker.unref();
  worker.on("message", events.onReply);
  worker.on("error", (error) => events.onStop(`${error.name}: ${error.message}`));
  worker.on("exit", (code) => events.onStop(`exit code ${code}`));
  return { post: (request) => worker.postMessage(request), ref: () => worker.ref(), unref: () => worker.unref(), terminate: () => void worker.terminate() };
}

function snapshotChannel(blob: string, events: ChannelEvents): CompilerChannel {
  const child = startFromSnapshot(blob, events);
  const unref = (): void => {
    child.unref();
    child.channel?.unref();
  };
  unref();
  return {
    post: (request) => void child.send(request),
    ref: () => {
      child.ref();
      child.channel?.ref();
    },
    unref,
    terminate: () => void child.kill(),
  };
}

function plainChain(chain: DeclarationChain): CompilerWorkerData["chain"] {
  return { name: chain.name, prelude: chain.prelude, globalNames: chain.globalNames };
}

/**
 * One chain's compiler and the requests it has not answered yet. It runs from the chain's
 * snapshot where one is given; a process that ends before its program is there (a blob this Node
 * cannot load) is replaced by a thread that creates the program, the waiting requests moved to it.
 */
class ChainCompiler {
  #channel: CompilerChannel;
  readonly #pending = new Map<number, { request: CompilerRequest; resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 1;
  /** Counts the channels started; events of an earlier one are ignored. */
  #generation = 0;
  readonly chainName: string;
  /** Why the compiler is gone; set once it has exited or was closed. */
  stopped: string | undefined;
  /** The blob this compiler started from; unset once it fell back to a thread. */
  #snapshot: string | undefined;
  /** Whether the compiler's program exists (PROGRAM_CREATED arrived). */
  programCreated = false;

  /** `onProgramCreated`: called once the program asked for on start exists, or the compiler stopped first (with `createProgram` or a snapshot only). */
  constructor(
    private readonly chain: DeclarationChain,
    createProgram: boolean,
    private readonly heapMb: number | undefined,
    private onProgramCreated?: () => void,
    snapshot?: string,
  ) {
    this.chainName = chain.name;
    this.#snapshot = snapshot;
    this.#channel = snapshot === undefined ? this.#onThread(createProgram) : snapshotChannel(snapshot, this.#events());
  }

  /** "the ranks chain's compiler thread" (or "process", from a snapshot): for messages. */
  get #name(): string {
    return `the ${this.chainName} chain's compiler ${this.fromSnapshot ? "process" : "thread"}`;
  }

  /** Whether the compiler runs from a snapshot. */
  get fromSnapshot(): boolean {
    return this.#snapshot !== undefined;
  }

  request(request: Request): Promise<unknown> {
    if (this.stopped !== undefined) return Promise.reject(new Error(`${this.#name} has stopped (${this.stopped})`));
    const numbered = { ...request, id: this.#nextId++ } as CompilerRequest;
    const reply = new Promise<unknown>((resolve, reject) => this.#pending.set(numbered.id, { request: numbered, resolve, reject }));
    if (this.#pending.size === 1) this.#channel.ref();
    this.#channel.post(numbered);
    return reply;
  }

  close(): void {
    this.#stop("the kernel closed its compiler");
    this.#channel.terminate();
  }

  #onThread(createProgram: boolean): CompilerChannel {
    return threadChannel(this.chain, createProgram, this.heapMb, this.#events());
  }

  /** Events of the channel being started only: a replaced channel's late exit is not this compiler's end. */
  #events(): ChannelEvents {
    const generation = ++this.#generation;
    return {
      onReply: (reply) => generation === this.#generation && this.#settle(reply),
      onStop: (reason) => generation === this.#generation && this.#stopped(reason),
    };
  }

  #settle(reply: CompilerReply): void {
    if (reply.id === PROGRAM_CREATED) return this.#programCreated();
    const waiting = this.#pending.get(reply.id);
    if (!waiting) return;
    this.#pending.delete(reply.id);
    if (this.#pending.size === 0) this.#channel.unref();
    if (reply.ok) return waiting.resolve(reply.value);
    if ("diagnostics" in reply) return waiting.reject(new CompileError(reply.diagnostics));
    const error = new Error(reply.error.message);
    error.name = reply.error.name;
    if (reply.error.stack) error.stack = reply.error.stack;
    waiting.reject(error);
  }

  /** Calls onProgramCreated once: when the program exists, or when the compiler stopped before it did (nothing is being created any more). */
  #programCreated(): void {
    this.programCreated = this.stopped === undefined;
    const created = this.onProgramCreated;
    this.onProgramCreated = undefined;
    created?.();
  }

  /** The channel ended: a snapshot's process before its program answered falls back to a thread; anything else stops this compiler. */
  #stopped(reason: string): void {
    const blob = this.#snapshot;
    if (blob === undefined || this.programCreated || this.stopped !== undefined) return this.#stop(reason);
    process.stderr.write(`distlab: ${this.#name} did not start from its snapshot (${reason}); creating its program on a thread, and the snapshot is discarded\n`);
    discardSnapshot(blob);
    this.#snapshot = undefined;
    this.#channel = this.#onThread(true);
    if (this.#pending.size > 0) this.#channel.ref();
    for (const { request } of this.#pending.values()) this.#channel.post(request);
  }

  #stop(reason: string): void {
    if (this.stopped !== undefined) return;
    this.stopped = reason;
    this.#programCreated();
    for (const waiting of this.#pending.values()) {
      waiting.reject(new Error(`${this.#name} stopped (${reason}); the next cell starts a new one`));
    }
    this.#pending.clear();
  }
}

export interface CompilerThreadsOptions {
  /** Create these chains' programs, the first from now on, each next once no cell has run for WARM_WHEN_QUIET_MS (default: the ranks', then the notebook's); [] leaves each to its first request. */
  warmChains?: readonly DeclarationChain[];
  /** Old-generation heap cap of each thread, MiB (default: Node's). A thread past it stops; see ChainCompiler. With a cap, no snapshots are used. */
  threadHeapMb?: number;
  /** Start each chain's compiler from its snapshot where one is usable, and build the missing ones when quiet (compiler-snapshot.ts). Default false. */
  snapshots?: boolean;
}

export class CompilerThreads implements CellCompiling {
  readonly #threads = new Map<string, ChainCompiler>();
  #closed = false;
  readonly #heapMb: number | undefined;
  /** Chains whose programs are still to be created in the background, in order. */
  readonly #toWarm: DeclarationChain[];
  /** The chain whose program is being created in the background (one at a time). */
  #warming: string | undefined;
  /** Chains whose programs the background warm-up created. */
  readonly #warmed: string[] = [];
  /** Cells running now (duringCell). */
  #cellsRunning = 0;
  #quietTimer?: ReturnType<typeof setTimeout>;
  readonly #snapshots: boolean;
  /** Chains whose programs were created on a thread and have no usable snapshot: built one at a time when quiet. */
  readonly #toSnapshot: DeclarationChain[] = [];
  /** The snapshot builder running now, and its chain's name. */
  #builder: ChildProcess | undefined;
  #building: string | undefined;

  constructor(options: CompilerThreadsOptions = {}) {
    this.#heapMb = options.threadHeapMb;
    this.#snapshots = options.snapshots === true && options.threadHeapMb === undefined;
    const warm = options.warmChains ?? (process.env[WARM_UP_ENV] === "0" ? [] : [DeclarationChain.ranks(), DeclarationChain.notebook()]);
    this.#toWarm = [...warm];
    this.#warmNext();
  }

  /**
   * Runs a cell (`run`), during which no chain's program is created in the background; the next
   * one waits until no cell has run for WARM_WHEN_QUIET_MS.
   */
  async duringCell<T>(run: () => Promise<T>): Promise<T> {
    this.#cellsRunning++;
    clearTimeout(this.#quietTimer);
    try {
      return await run();
    } finally {
      this.#cellsRunning--;
      this.#warmWhenQuiet();
    }
  }

  /**
   * Creates the next chain's program. One at a time, not side by side: on two cores, a second
   * program would take the core that a first cell's ranks start on. A chain whose first request
   * comes before its turn starts its thread then (#request).
   */
  #warmNext(): void {
    let next = this.#toWarm.shift();
    while (next && this.#threads.has(next.name)) next = this.#toWarm.shift();
    if (!next || this.#closed) return;
    const chain = next;
    const thread = this.#start(chain, true, () => {
      this.#warming = undefined;
      if (thread.stopped === undefined) this.#warmed.push(chain.name);
      this.#warmWhenQuiet();
    });
    this.#warming = chain.name;
  }

  /** Starts `chain`'s compiler, from its snapshot where one is usable; a chain created on a thread gets its snapshot built later. */
  #start(chain: DeclarationChain, createProgram: boolean, onProgramCreated?: () => void): ChainCompiler {
    const snapshot = this.#snapshots ? usableSnapshot(chain) : undefined;
    const blob = snapshot && "blob" in snapshot ? snapshot.blob : undefined;
    const thread = new ChainCompiler(chain, createProgram, this.#heapMb, () => {
      if (this.#snapshots && !thread.fromSnapshot && thread.programCreated && !this.#toSnapshot.some((c) => c.name === chain.name)) {
        this.#toSnapshot.push(chain);
      }
      onProgramCreated?.();
    }, blob);
    this.#threads.set(chain.name, thread);
    return thread;
  }

  /** Where the background warm-up stands: chains whose programs it created, the one it is creating, those still waiting (for diagnostics and tests). */
  warmUp(): { created: string[]; creating?: string; waiting: string[] } {
    return { created: [...this.#warmed], ...(this.#warming ? { creating: this.#warming } : {}), waiting: this.#toWarm.map((chain) => chain.name) };
  }

  /**
   * Once no cell has run for WARM_WHEN_QUIET_MS (re-armed by each cell's end): warms the next
   * chain, or, with every chain warm, builds the next missing snapshot.
   */
  #warmWhenQuiet(): void {
    clearTimeout(this.#quietTimer);
    const idle = !this.#closed && this.#warming === undefined && this.#builder === undefined && this.#cellsRunning === 0;
    if (!idle || this.#toWarm.length + this.#toSnapshot.length === 0) return;
    this.#quietTimer = setTimeout(() => {
      if (this.#cellsRunning > 0 || this.#warming !== undefined || this.#builder !== undefined) return;
      if (this.#toWarm.length > 0) return this.#warmNext();
      this.#buildNextSnapshot();
    }, WARM_WHEN_QUIET_MS);
    // a pending warm-up never keeps the kernel alive
    this.#quietTimer.unref?.();
  }

  #buildNextSnapshot(): void {
    const chain = this.#toSnapshot.shift();
    if (!chain || this.#closed) return;
    if ("blob" in usableSnapshot(chain)) return this.#warmWhenQuiet();
    const builder = buildSnapshot(chain, () => {
      if (this.#builder !== builder) return;
      this.#builder = this.#building = undefined;
      this.#warmWhenQuiet();
    });
    this.#builder = builder;
    this.#building = chain.name;
  }

  /** Where the snapshots stand: chains whose compilers run from one, the one being built, those waiting for a build (for diagnostics and tests). */
  snapshotState(): { running: string[]; building?: string; waiting: string[] } {
    const running = [...this.#threads.values()].filter((thread) => thread.fromSnapshot && thread.stopped === undefined).map((thread) => thread.chainName);
    return { running, ...(this.#building ? { building: this.#building } : {}), waiting: this.#toSnapshot.map((chain) => chain.name) };
  }

  async compile(code: string, chain: DeclarationChain): Promise<CompiledCell> {
    return (await this.#request(chain, { op: "compile", declarations: chain.declarations, code })) as CompiledCell;
  }

  async complete(code: string, offset: number, chain: DeclarationChain): Promise<CompletionInfo> {
    return (await this.#request(chain, { op: "complete", declarations: chain.declarations, code, offset })) as CompletionInfo;
  }

  async inspect(code: string, offset: number, chain: DeclarationChain): Promise<TS.QuickInfo | undefined> {
    return (await this.#request(chain, { op: "inspect", declarations: chain.declarations, code, offset })) as TS.QuickInfo | undefined;
  }

  async declareVariable(chain: DeclarationChain, name: string, typeText = "any"): Promise<void> {
    const compiled = await this.compile(declarationCell(name, typeText), chain);
    chain.replaceDeclarations(compiled.declarations);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#quietTimer);
    // A snapshot build goes on to its end (seconds, at the lowest priority), for the next kernel.
    for (const thread of this.#threads.values()) thread.close();
    this.#threads.clear();
  }

  #request(chain: DeclarationChain, request: Request): Promise<unknown> {
    let thread = this.#threads.get(chain.name);
    if (!thread || thread.stopped !== undefined) thread = this.#start(chain, false);
    return thread.request(request);
  }
}
