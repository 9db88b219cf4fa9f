/**
 * The kernel's cell compiler: one worker thread per declaration chain
 * (the notebook's, the ranks'), each holding that chain's TypeScript
 * program.
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

/** One chain's thread and the requests it has not answered yet. */
class ChainThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 1;
  readonly chainName: string;
  /** Why the thread is gone; set once it has exited or was closed. */
  stopped: string | undefined;

  /** `onProgramCreated`: called once the program asked for on start exists, or the thread stopped first (with `createProgram` only). */
  constructor(chain: DeclarationChain, createProgram: boolean, heapMb: number | undefined, private onProgramCreated?: () => void) {
    this.chainName = chain.name;
    const workerData: CompilerWorkerData = { chain: { name: chain.name, prelude: chain.prelude, globalNames: chain.globalNames }, createProgram };
    const options = { workerData, execArgv: workerExecArgv(), ...(heapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: heapMb } }) };
    this.#worker = FROM_SOURCE
      ? new Worker(`require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(WORKER_FILE)});`, { ...options, eval: true })
      : new Worker(WORKER_FILE, options);
    // An idle compiler never keeps the kernel alive; a pending request does (request()).
    this.#worker.unref();
    this.#worker.on("message", (reply: CompilerReply) => this.#settle(reply));
    this.#worker.on("error", (error) => this.#stop(`${error.name}: ${error.message}`));
    this.#worker.on("exit", (code) => this.#stop(`exit code ${code}`));
  }

  request(request: Request): Promise<unknown> {
    if (this.stopped !== undefined) return Promise.reject(new Error(`the ${this.chainName} chain's compiler thread has stopped (${this.stopped})`));
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    if (this.#pending.size === 1) this.#worker.ref();
    this.#worker.postMessage({ ...request, id } satisfies CompilerRequest);
    return reply;
  }

  close(): void {
    this.#stop("the kernel closed its compiler");
    void this.#worker.terminate();
  }

  #settle(reply: CompilerReply): void {
    if (reply.id === PROGRAM_CREATED) return this.#programCreated();
    const waiting = this.#pending.get(reply.id);
    if (!waiting) return;
    this.#pending.delete(reply.id);
    if (this.#pending.size === 0) this.#worker.unref();
    if (reply.ok) return waiting.resolve(reply.value);
    if ("diagnostics" in reply) return waiting.reject(new CompileError(reply.diagnostics));
    const error = new Error(reply.error.message);
    error.name = reply.error.name;
    if (reply.error.stack) error.stack = reply.error.stack;
    waiting.reject(error);
  }

  /** Calls onProgramCreated once: when the program exists, or when the thread stopped before it did (nothing is being created any more). */
  #programCreated(): void {
    const created = this.onProgramCreated;
    this.onProgramCreated = undefined;
    created?.();
  }

  #stop(reason: string): void {
    if (this.stopped !== undefined) return;
    this.stopped = reason;
    this.#programCreated();
    for (const waiting of this.#pending.values()) {
      waiting.reject(new Error(`the ${this.chainName} chain's compiler thread stopped (${reason}); the next cell starts a new one`));
    }
    this.#pending.clear();
  }
}

export interface CompilerThreadsOptions {
  /** Create these chains' programs, the first from now on, each next once no cell has run for WARM_WHEN_QUIET_MS (default: the ranks', then the notebook's); [] leaves each to its first request. */
  warmChains?: readonly DeclarationChain[];
  /** Old-generation heap cap of each thread, MiB (default: Node's). A thread past it stops; see ChainThread. */
  threadHeapMb?: number;
}

export class CompilerThreads implements CellCompiling {
  readonly #threads = new Map<string, ChainThread>();
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

  constructor(options: CompilerThreadsOptions = {}) {
    this.#heapMb = options.threadHeapMb;
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
    const thread = new ChainThread(chain, true, this.#heapMb, () => {
      this.#warming = undefined;
      if (thread.stopped === undefined) this.#warmed.push(chain.name);
      this.#warmWhenQuiet();
    });
    this.#warming = chain.name;
    this.#threads.set(chain.name, thread);
  }

  /** Where the background warm-up stands: chains whose programs it created, the one it is creating, those still waiting (for diagnostics and tests). */
  warmUp(): { created: string[]; creating?: string; waiting: string[] } {
    return { created: [...this.#warmed], ...(this.#warming ? { creating: this.#warming } : {}), waiting: this.#toWarm.map((chain) => chain.name) };
  }

  /** Warms the next chain once no cell has run for WARM_WHEN_QUIET_MS (re-armed by each cell's end). */
  #warmWhenQuiet(): void {
    clearTimeout(this.#quietTimer);
    if (this.#closed || this.#warming !== undefined || this.#cellsRunning > 0 || this.#toWarm.length === 0) return;
    this.#quietTimer = setTimeout(() => {
      if (this.#cellsRunning === 0 && this.#warming === undefined) this.#warmNext();
    }, WARM_WHEN_QUIET_MS);
    // a pending warm-up never keeps the kernel alive
    this.#quietTimer.unref?.();
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
    for (const thread of this.#threads.values()) thread.close();
    this.#threads.clear();
  }

  #request(chain: DeclarationChain, request: Request): Promise<unknown> {
    let thread = this.#threads.get(chain.name);
    if (!thread || thread.stopped !== undefined) {
      thread = new ChainThread(chain, false, this.#heapMb);
      this.#threads.set(chain.name, thread);
    }
    return thread.request(request);
  }
}
