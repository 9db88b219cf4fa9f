/**
 * `%dist` line magics against the running group: status, stop, and moving
 * variables between the notebook's own scope and the ranks (push, pull,
 * scatter, gather), as ipyparallel's view does for engines.
 */
import { countRanks, UsageError } from "../../errors";
import type { DistCommand } from "../../magics/dist-spec";
import type { ExecuteOutcome, ExecutionIO } from "../../protocol/backend";
import type { CellCompiling } from "../../repl/cell-compiling";
import type { DistributedSession } from "./distributed-session";
import { describeShape } from "./distributed-session";
import type { VariableResult } from "../rank-messages";
import { splitEvenly } from "../split";
import type { RankGroup } from "./rank-group";
import { TIMELINE_PAYLOAD_TYPE, timelineCommand, timelineInto } from "./timeline-command";
import type { TimelinePayload } from "../../trace";
import { typeTextOf } from "./value-types";
import { diagnose, formatDiagnosis } from "../../doctor/diagnose";
import { probeMachine } from "../../doctor/probes";
import { describeHosts } from "../../hosts/host-report";

/** The notebook's own scope, as the TypeScript REPL exposes it. */
export interface NotebookScope {
  getVariable(name: string): unknown;
  /** Declares `name` as `typeText`, so later cells type-check against it, then sets it. */
  setVariable(name: string, value: unknown, typeText: string): Promise<void>;
}

/** How long `%dist status` waits for a rank to answer (milliseconds); a rank in a synchronous loop does not. */
const STATUS_WAIT_MS = 300;

export class DistCommands {
  constructor(
    private readonly session: DistributedSession,
    private readonly notebook: NotebookScope,
    private readonly compiler: CellCompiling,
    /** Where the last distributed cell's timeline is kept (absent: `%dist timeline` has none). */
    private readonly timeline?: { readonly last: TimelinePayload | undefined },
  ) {}

  async run(command: Exclude<DistCommand, { command: "help" }>, io: ExecutionIO): Promise<ExecuteOutcome> {
    switch (command.command) {
      case "status":
        io.stream("stdout", await this.status());
        return { status: "ok" };
      case "doctor":
        io.stream("stdout", formatDiagnosis(diagnose(await probeMachine())));
        return { status: "ok" };
      case "hosts":
        io.stream("stdout", describeHosts(this.session.group));
        return { status: "ok" };
      case "stop": {
        const stopped = await this.session.stop();
        io.stream("stdout", stopped ? "stopped the group; its ranks' state is gone\n" : "no group was running\n");
        return { status: "ok" };
      }
      case "push":
        await this.push(command.name, io);
        return { status: "ok" };
      case "pull":
        await this.pull(command.name, io);
        return { status: "ok" };
      case "scatter":
        await this.scatter(command.name, io);
        return { status: "ok" };
      case "gather":
        await this.gather(command.name, io);
        return { status: "ok" };
      case "timeline":
        if (command.into !== undefined) {
          const payload = timelineInto(this.timeline?.last, command.into);
          await this.notebook.setVariable(command.into, payload, TIMELINE_PAYLOAD_TYPE);
          io.stream("stdout", `${command.into} = the last timeline (${payload.spans.length} spans, ${payload.ranks.length} ranks; .summary.overlapPct ${payload.summary.overlapPct.toFixed(1)}%)\n`);
          if (command.exportFile === undefined) return { status: "ok" };
        }
        await timelineCommand(this.timeline?.last, command.exportFile, io);
        return { status: "ok" };
      default:
        throw new UsageError(`%dist: unhandled subcommand ${JSON.stringify(command)}`, "%dist");
    }
  }

  private async status(): Promise<string> {
    const group = this.session.group;
    if (!group) return "no group running; the next %%distributed cell starts one\n";
    const rows = await Promise.all(
      group.ranks.map(async (rank) => {
        if (rank.needsInit) return `  rank ${rank.info.rank}: not started`;
        const answer = await rank.status(STATUS_WAIT_MS);
        if (!answer) return `  rank ${rank.info.rank}: alive, busy (not answering: running synchronous code), tf ${rank.tfBackend}`;
        const heap = `${(answer.heapUsedBytes / 2 ** 20).toFixed(1)} MiB of ${(answer.heapLimitBytes / 2 ** 20).toFixed(0)} MiB heap`;
        const w = answer.wire;
        const wire = `sent ${formatBytes(w.bytesSent)} in ${w.messagesSent} messages, received ${formatBytes(w.bytesReceived)} in ${w.messagesReceived}`;
        const where = group.shape.backend === "hosts" ? ` on ${rank.info.host}` : "";
        return `  rank ${rank.info.rank}${where}: alive, ${answer.busy ? "busy" : "idle"}, ${heap}, tf ${answer.tfBackend}, device ${rank.device}, ${wire}`;
      }),
    );
    const where = group.shape.backend === "hosts" ? `agents ${[...new Set(group.ranks.map((rank) => rank.info.host))].join(", ")}` : group.host;
    return `group: ${describeShape(group.shape)} on ${where}\n${rows.join("\n")}\n`;
  }

  private requireGroup(what: string): RankGroup {
    const group = this.session.group;
    if (!group || group.ranks.some((rank) => rank.needsInit)) {
      throw new UsageError(`%dist ${what}: no running group; run a %%distributed cell first`, `%dist ${what}`);
    }
    return group;
  }

  private readNotebook(what: string, name: string): unknown {
    try {
      return this.notebook.getVariable(name);
    } catch (error) {
      throw new UsageError(`%dist ${what}: ${name} is not defined in the notebook (${(error as Error).message})`, name);
    }
  }

  private async push(name: string, io: ExecutionIO): Promise<void> {
    const group = this.requireGroup("push");
    const value = this.readNotebook("push", name);
    await this.sendEach(group, "push", name, () => value);
    await this.declareOnRanks(name, typeTextOf(value));
    io.stream("stdout", `pushed ${name} to ${countRanks(group.ranks.length)}\n`);
  }

  private async pull(name: string, io: ExecutionIO): Promise<void> {
    const group = this.requireGroup("pull");
    const values = await this.pullEach(group, "pull", name);
    await this.notebook.setVariable(name, values, `Array<${typeTextOf(values[0])}>`);
    io.stream("stdout", `pulled ${name} from ${countRanks(values.length)} into ${name}[rank]\n`);
  }

  private async scatter(name: string, io: ExecutionIO): Promise<void> {
    const group = this.requireGroup("scatter");
    const value = this.readNotebook("scatter", name);
    if (!Array.isArray(value) && !(ArrayBuffer.isView(value) && !(value instanceof DataView))) {
      throw new UsageError(`%dist scatter: ${name} must be an array or a typed array, got ${typeTextOf(value)}`, name);
    }
    const sequence = value as unknown[] | Float64Array;
    const blocks = splitEvenly(sequence.length, group.ranks.length);
    await this.sendEach(group, "scatter", name, (rank) => sequence.slice(blocks[rank]!.start, blocks[rank]!.end));
    await this.declareOnRanks(name, typeTextOf(value));
    const sizes = blocks.map((block) => block.end - block.start);
    io.stream("stdout", `scattered ${name} (${sequence.length} elements) as ${sizes.join(", ")} elements on ranks 0..${sizes.length - 1}\n`);
  }

  private async gather(name: string, io: ExecutionIO): Promise<void> {
    const group = this.requireGroup("gather");
    const parts = await this.pullEach(group, "gather", name);
    parts.forEach((part, rank) => {
      if (!Array.isArray(part) && !(ArrayBuffer.isView(part) && !(part instanceof DataView))) {
        throw new UsageError(`%dist gather: ${name} on rank ${rank} must be an array or a typed array, got ${typeTextOf(part)}`, name);
      }
    });
    const gathered = concatenate(parts as ArrayLike<unknown>[]);
    await this.notebook.setVariable(name, gathered, typeTextOf(gathered));
    io.stream("stdout", `gathered ${name}: ${gathered.length} elements from ${countRanks(parts.length)}\n`);
  }

  private async sendEach(group: RankGroup, what: string, name: string, valueFor: (rank: number) => unknown): Promise<void> {
    await Promise.all(
      group.ranks.map(async (rank, index) => {
        let result: VariableResult;
        try {
          result = (await rank.run({ kind: "push", name, value: valueFor(index) })) as VariableResult;
        } catch (error) {
          throw new TypeError(`%dist ${what}: cannot copy ${name} to rank ${index}: ${(error as Error).message} (functions and class instances do not cross to ranks)`);
        }
        if (!result.ok) throw new Error(`%dist ${what}: rank ${index}: ${result.error.name}: ${result.error.message}`);
      }),
    );
  }

  private async pullEach(group: RankGroup, what: string, name: string): Promise<unknown[]> {
    return Promise.all(
      group.ranks.map(async (rank, index) => {
        const result = (await rank.run({ kind: "pull", name })) as VariableResult;
        if (!result.ok) throw new UsageError(`%dist ${what}: rank ${index}: ${result.error.message}`, name);
        return result.value;
      }),
    );
  }

  private async declareOnRanks(name: string, typeText: string): Promise<void> {
    await this.compiler.declareVariable(this.session.chain, name, typeText);
  }
}

/** Payload bytes as `%dist status` shows them: exact below 1 KiB, else KiB/MiB/GiB with one decimal. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Concatenates in rank order: typed arrays of one kind stay that kind, anything else becomes a plain array. */
function concatenate(parts: ArrayLike<unknown>[]): ArrayLike<unknown> & { length: number } {
  const first = parts[0];
  const ctor = first && ArrayBuffer.isView(first) ? (first.constructor as new (length: number) => Float64Array) : undefined;
  if (ctor && parts.every((part) => part.constructor === ctor)) {
    const out = new ctor(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part as Float64Array, at);
      at += part.length;
    }
    return out;
  }
  return parts.flatMap((part) => Array.from(part));
}
