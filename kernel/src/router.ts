/**
 * The kernel's backend: routes `%%distributed` cells and `%dist` line magics
 * to the cluster, everything else to the TypeScript REPL.
 *
 * Magics here only parse and delegate (as ipyparallel's do); a usage error
 * becomes a Jupyter error naming the flag and the kernel keeps going.
 */
import type {
  CompleteOutcome,
  ExecuteOutcome,
  ExecutionIO,
  InspectOutcome,
  IsCompleteOutcome,
  KernelBackend,
} from "./protocol/backend";
import { UsageError } from "./errors";
import { splitArgs, splitMagic } from "./magics/split-magic";
import { distributedHelp, parseDistributedFlags } from "./magics/distributed-spec";
import { completeDist, distHelp, parseDistCommand } from "./magics/dist-spec";
import { completeFlag } from "./magics/flags";
import { expandMagicVariables, type NotebookVariables } from "./magics/expand-variables";
import { DISTRIBUTED_FLAGS } from "./magics/distributed-spec";
import { TypeScriptRepl } from "./repl/typescript-repl";
import { CompilerThreads } from "./repl/compiler-threads";
import { snapshotsWanted } from "./repl/compiler-snapshot";
import { completeAt, inspectAt } from "./repl/code-intel";
import { DistributedSession } from "./cluster/kernel-side/distributed-session";
import { DistCommands } from "./cluster/kernel-side/dist-commands";
import { TimelineObserver } from "./cluster/kernel-side/timeline-observer";

/** What runs `%%distributed` cells and `%dist` commands (kernel/src/cluster). */
export interface DistributedRunner {
  runCell(body: string, bodyLineOffset: number, options: ReturnType<typeof parseDistributedFlags>, io: ExecutionIO): Promise<ExecuteOutcome>;
  runCommand(command: Exclude<ReturnType<typeof parseDistCommand>, { command: "help" }>, io: ExecutionIO): Promise<ExecuteOutcome>;
  interrupt(): void;
  shutdown(): Promise<void>;
  /** Completion and inspection in a `%%distributed` body, against the ranks' declarations (`dist`, `tf`, earlier distributed cells); positions in code points of the body. */
  complete(body: string, cursorPos: number): Promise<CompleteOutcome>;
  inspect(body: string, cursorPos: number, detailLevel: 0 | 1): Promise<InspectOutcome>;
}

export class MagicRouter implements KernelBackend {
  constructor(
    private readonly plain: KernelBackend,
    private readonly distributed: DistributedRunner,
    /** Notebook variables that `$NAME` in a `%%distributed` line stands for (expand-variables.ts). */
    private readonly variables?: NotebookVariables,
    /** Told of each cell's run: the compiler creates no program in the background meanwhile (compiler-threads.ts). */
    private readonly cells?: Pick<CompilerThreads, "duringCell">,
  ) {}

  execute(code: string, io: ExecutionIO): Promise<ExecuteOutcome> {
    return this.cells ? this.cells.duringCell(() => this.route(code, io)) : this.route(code, io);
  }

  private async route(code: string, io: ExecutionIO): Promise<ExecuteOutcome> {
    const magic = splitMagic(code);
    if (!magic) return this.plain.execute(code, io);
    try {
      if (magic.kind === "cell") {
        if (magic.name !== "distributed") {
          throw new UsageError(`unknown cell magic %%${magic.name} (known: %%distributed; see %dist help)`, `%%${magic.name}`);
        }
        const options = parseDistributedFlags(splitArgs(expandMagicVariables("%%distributed", magic.args, this.variables)));
        if (options.help) {
          io.stream("stdout", `${distributedHelp()}\n`);
          return { status: "ok" };
        }
        return await this.distributed.runCell(magic.body, magic.bodyLineOffset, options, io);
      }
      if (magic.name !== "dist") {
        throw new UsageError(`unknown line magic %${magic.name} (known: %dist; see %dist help)`, `%${magic.name}`);
      }
      if (magic.trailingCode !== "") {
        throw new UsageError(`%dist must be alone in its cell; move the code after it to its own cell`, "%dist");
      }
      const command = parseDistCommand(splitArgs(magic.args));
      if (command.command === "help") {
        io.stream("stdout", `%dist subcommands:\n${distHelp()}\n\n${distributedHelp()}\n`);
        return { status: "ok" };
      }
      return await this.distributed.runCommand(command, io);
    } catch (error) {
      return errorOutcome(error);
    }
  }

  async complete(code: string, cursorPos: number): Promise<CompleteOutcome> {
    const magicCompletion = completeMagicLine(code, cursorPos);
    if (magicCompletion) return magicCompletion;
    const cell = distributedBodyAt(code, cursorPos);
    if (!cell) return this.plain.complete(code, cursorPos);
    const inBody = await this.distributed.complete(cell.body, cursorPos - cell.start);
    return { ...inBody, cursorStart: inBody.cursorStart + cell.start, cursorEnd: inBody.cursorEnd + cell.start };
  }

  inspect(code: string, cursorPos: number, detailLevel: 0 | 1): Promise<InspectOutcome> {
    const cell = distributedBodyAt(code, cursorPos);
    return cell ? this.distributed.inspect(cell.body, cursorPos - cell.start, detailLevel) : this.plain.inspect(code, cursorPos, detailLevel);
  }

  async isComplete(code: string): Promise<IsCompleteOutcome> {
    const magic = splitMagic(code);
    if (magic?.kind === "line") return { status: "complete" };
    if (magic?.kind === "cell") return magic.body.trim() === "" ? { status: "incomplete", indent: "" } : this.plain.isComplete(magic.body);
    return this.plain.isComplete(code);
  }

  interrupt(): void {
    this.distributed.interrupt();
    this.plain.interrupt();
  }

  async shutdown(restart: boolean): Promise<void> {
    await Promise.allSettled([this.distributed.shutdown(), this.plain.shutdown(restart)]);
  }
}

/** A `%%distributed` cell's body and where it starts in `code` (code points), when `cursorPos` lies in the body. */
function distributedBodyAt(code: string, cursorPos: number): { body: string; start: number } | undefined {
  const magic = splitMagic(code);
  if (magic?.kind !== "cell" || magic.name !== "distributed") return undefined;
  // the body is what follows the magic's line: a suffix of the cell
  const start = Array.from(code).length - Array.from(magic.body).length;
  return cursorPos >= start ? { body: magic.body, start } : undefined;
}

/** Completes flag and subcommand names on a magic's first line; undefined elsewhere. */
function completeMagicLine(code: string, cursorPos: number): CompleteOutcome | undefined {
  // cursorPos counts code points; magic lines are ASCII in practice, but convert to be exact.
  const before = Array.from(code).slice(0, cursorPos).join("");
  if (before.includes("\n")) return undefined;
  const partial = /\S*$/.exec(before)![0];
  const words = before.trim().split(/\s+/);
  let matches: string[];
  if (before.startsWith("%%distributed")) matches = completeFlag(DISTRIBUTED_FLAGS, partial);
  else if (before.startsWith("%dist ")) matches = completeDist(words.slice(1, partial === "" ? undefined : -1), partial);
  else return undefined;
  const cursorEnd = Array.from(before).length;
  return { matches, cursorStart: cursorEnd - Array.from(partial).length, cursorEnd };
}

/** One error path: anything a magic throws becomes a Jupyter error. */
export function errorOutcome(error: unknown): ExecuteOutcome {
  if (error instanceof Error) {
    const traceback = error instanceof UsageError ? [`${error.name}: ${error.message}`] : (error.stack ?? `${error.name}: ${error.message}`).split("\n");
    return { status: "error", ename: error.name, evalue: error.message, traceback };
  }
  return { status: "error", ename: "Error", evalue: String(error), traceback: [String(error)] };
}

/**
 * The kernel's backend: one TypeScript compiler shared by plain cells and
 * %%distributed cells (creating a TypeScript program takes seconds).
 * `timeline` shows each distributed cell's live timeline and keeps the last
 * one for `%dist timeline`.
 */
export function createKernelBackend(timeline = new TimelineObserver()): KernelBackend {
  const compiler = new CompilerThreads({ snapshots: snapshotsWanted() });
  const repl = new TypeScriptRepl({ compiler });
  const session = new DistributedSession(repl.compiler, timeline);
  const commands = new DistCommands(session, repl, repl.compiler, timeline);
  return new MagicRouter(repl, {
    runCell: (body, bodyLineOffset, options, io) => session.runCell(body, bodyLineOffset, options, io),
    runCommand: (command, io) => commands.run(command, io),
    // Distributed cells watch io.interruptSignal; there is nothing else to stop.
    interrupt: () => undefined,
    shutdown: async () => {
      await session.stop();
    },
    complete: (body, cursorPos) => completeAt(repl.compiler, session.chain, body, cursorPos),
    inspect: (body, cursorPos, detailLevel) => inspectAt(repl.compiler, session.chain, body, cursorPos, detailLevel),
  }, repl, compiler);
}

/** The name kernel-main.ts looks up. */
export const createBackend = createKernelBackend;
