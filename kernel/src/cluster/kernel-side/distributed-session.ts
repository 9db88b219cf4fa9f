/**
 * Runs `%%distributed` cells on a group of ranks (threads, processes or one
 * process per GPU; ../backends/plan-group.ts) and keeps that group between cells
 * while its shape is unchanged (so each rank keeps its declarations).
 *
 * Per cell: compile the body once against the ranks' declaration chain,
 * send the compiled cell to every rank, stream their output tagged by rank,
 * and answer with one execute_result (values indexed by rank) or one error
 * naming the rank that failed.
 */
import type { TfBackendName } from "../../compute/backend-names";
import type { DistributedOptions } from "../../magics/distributed-spec";
import type { ExecuteOutcome, ExecutionIO } from "../../protocol/backend";
import type { CellCompiling } from "../../repl/cell-compiling";
import type { CompiledCell } from "../../repl/cell-compiler";
import { DeclarationChain } from "../../repl/declaration-chain";
import { CompileError } from "../../repl/errors";
import { defaultRankMemoryBytes, formatSize } from "../../magics/memory-size";
import { buildCellResult } from "./cell-result";
import { planGroup, type BackendOptions, type GroupPlan } from "../backends/plan-group";
import { groupErrorOutcome } from "./group-errors";
import type { GroupShape, RankEvent } from "../rank-messages";
import { RankOutput } from "./rank-output";
import type { RankGroup } from "./rank-group";

/** Where the timeline hooks into a cell's life; every method is optional work for the observer. */
export interface CellObserver {
  cellStarted(cellId: number, group: RankGroup, io: ExecutionIO, options: DistributedOptions): void;
  /** A rank's batch of spans (payload defined by kernel/src/trace). */
  traceBatch(cellId: number, rank: number, batch: unknown): void;
  cellEnded(cellId: number, ok: boolean): void;
}

export class DistributedSession {
  private groupState?: RankGroup;
  readonly chain = DeclarationChain.ranks();
  private nextCellId = 1;
  /** Output sinks of cells that may still print (the running one, and the last one for late output). */
  private readonly outputs = new Map<number, RankOutput>();

  constructor(
    private readonly compiler: CellCompiling,
    private readonly observer?: CellObserver,
    private readonly backendOptions: BackendOptions = {},
  ) {}

  get group(): RankGroup | undefined {
    return this.groupState;
  }

  async runCell(body: string, bodyLineOffset: number, options: DistributedOptions, io: ExecutionIO): Promise<ExecuteOutcome> {
    const group = await this.groupFor(planGroup(options, this.backendOptions), io);
    let compiled: CompiledCell;
    try {
      compiled = await this.compiler.compile(body, this.chain);
    } catch (error) {
      if (error instanceof CompileError) return compileErrorOutcome(error, bodyLineOffset);
      throw error;
    }
    const cellId = this.nextCellId++;
    const output = new RankOutput(io, options.groupOutputs, group.shape.size);
    this.outputs.clear();
    this.outputs.set(cellId, output);
    const timeoutMs = options.timeoutSeconds * 1000;
    // A fresh group loads TensorFlow.js first (seconds): the timeline starts when the ranks can run.
    const rendezvousTimeoutMs = options.rendezvousTimeoutSeconds === undefined ? {} : { rendezvousTimeoutMs: options.rendezvousTimeoutSeconds * 1000 };
    for (const note of await group.prepare(timeoutMs, { interrupt: io.interruptSignal, progress: progressLine(io), ...rendezvousTimeoutMs })) {
      io.stream("stderr", `distlab: ${note}\n`);
    }
    const observer = options.timeline !== "off" ? this.observer : undefined;
    observer?.cellStarted(cellId, group, io, options);
    // Declarations travel with the chain in the kernel; ranks need only the code.
    const shipped: CompiledCell = { ...compiled, declarations: "" };
    let failure: ExecuteOutcome | undefined;
    let result: Awaited<ReturnType<RankGroup["runCell"]>>;
    let ok = false;
    try {
      result = await group.runCell({
        cellId, cell: shipped, cellName: `cell ${io.executionCount}`, timeoutMs, interrupt: io.interruptSignal, timeline: observer !== undefined,
      });
      output.finish();
      failure = groupErrorOutcome(result, (rank) => group.hostOf(rank), bodyLineOffset, group.shape.backend === "hosts");
      ok = failure === undefined;
    } finally {
      // Also after an error or interrupt: the notebook keeps the timeline of what ran.
      observer?.cellEnded(cellId, ok);
    }
    if (failure) return failure;
    this.chain.advance(compiled);
    const values = result.outcomes.map((outcome) => (outcome.ok ? outcome.value : {}));
    const display = buildCellResult(values);
    return display ? { status: "ok", result: display } : { status: "ok" };
  }

  /** Stops the group; the ranks' declarations are forgotten. */
  async stop(): Promise<boolean> {
    const group = this.groupState;
    this.groupState = undefined;
    this.chain.reset();
    if (!group) return false;
    await group.close();
    return true;
  }

  private async groupFor(plan: GroupPlan, io: ExecutionIO): Promise<RankGroup> {
    const current = this.groupState;
    if (current && sameShape(current.shape, plan.shape)) return current;
    if (current) {
      io.stream("stderr", `distlab: group shape changed (${describeShape(current.shape)} -> ${describeShape(plan.shape)}); restarting the ranks, their state is lost\n`);
      await this.stop();
    }
    if (plan.startNote !== undefined) io.stream("stderr", plan.startNote);
    const group = plan.start((rank, event) => this.onRankEvent(rank, event));
    this.groupState = group;
    return group;
  }

  private onRankEvent(rank: number, event: RankEvent): void {
    switch (event.kind) {
      case "stream":
        this.outputs.get(event.cellId)?.write(rank, event.name, event.text);
        return;
      case "display":
        this.outputs.get(event.cellId)?.display(event.payload, event.update);
        return;
      case "clear":
        this.outputs.get(event.cellId)?.clear(event.wait);
        return;
      case "trace":
        this.observer?.traceBatch(event.cellId, rank, event.batch);
        return;
      case "background-error": {
        // Under the cell that caused it while that is the latest; else under the one running now.
        const output = this.outputs.get(event.cellId) ?? [...this.outputs.values()].at(-1);
        output?.backgroundError(rank, describeBackgroundError(rank, event));
        return;
      }
    }
  }
}

function describeBackgroundError(rank: number, event: Extract<RankEvent, { kind: "background-error" }>): string {
  const stack = event.error.stack.startsWith(`${event.error.name}:`) ? event.error.stack : `${event.error.name}: ${event.error.message}\n${event.error.stack}`;
  return `${event.origin} on rank ${rank}, outside any await of its cell (the rank keeps running; its state is kept):\n${stack.trimEnd()}\n`;
}

function sameShape(a: GroupShape, b: GroupShape): boolean {
  return describeShape(a) === describeShape(b);
}

export function describeShape(shape: GroupShape): string {
  const parts = [`-n ${shape.size}`, `--backend ${shape.backend}`];
  if (shape.link) parts.push(`--link bandwidth=${shape.link.bandwidth}B/s,latency=${shape.link.latency}s`);
  if (shape.tfBackend) parts.push(`--tf-backend ${shape.tfBackend as TfBackendName}`);
  if (shape.hosts !== undefined) parts.push(`--hosts ${shape.hosts}`);
  if (shape.tokenFile !== undefined) parts.push(`--token-file ${shape.tokenFile}`);
  // The default cap follows from -n: shown only when --memory chose another.
  if (shape.memoryCapBytes !== defaultRankMemoryBytes(shape.size)) parts.push(`--memory ${formatSize(shape.memoryCapBytes).replace(" ", "")}`);
  return parts.join(" ");
}

function compileErrorOutcome(error: CompileError, bodyLineOffset: number): ExecuteOutcome {
  const lines = error.diagnostics.map((d) => `${d.file ? `${d.file} ` : ""}${d.file ? d.line : d.line + bodyLineOffset}:${d.column} - ${d.message}`);
  return { status: "error", ename: "CompileError", evalue: lines.join("\n"), traceback: [`CompileError: cell does not compile`, ...lines] };
}

let nextProgressId = 1;

/** A line under the cell that each call replaces (one display_data, then update_display_data). */
function progressLine(io: ExecutionIO): (line: string) => void {
  const displayId = `distlab-progress-${process.pid}-${nextProgressId++}`;
  let shown = false;
  return (line) => {
    io.display({ data: { "text/plain": line }, transient: { display_id: displayId } }, shown);
    shown = true;
  };
}
