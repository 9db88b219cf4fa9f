/**
 * Turns the raw stdout/stderr chunks of N ranks into `[rank r] ` prefixed
 * lines, either streamed as each line completes (`order`) or held and
 * printed grouped by rank when the cell ends (`rank`).
 */
import type { DisplayPayload, ExecutionIO } from "../../protocol/backend";

type StreamName = "stdout" | "stderr";

export class RankOutput {
  /** Unfinished line per rank and stream (text after the last newline). */
  private readonly partial = new Map<string, string>();
  /** `rank` mode only: finished lines per rank, in arrival order. */
  private readonly held: Array<Array<{ name: StreamName; line: string }>>;

  constructor(
    private readonly io: Pick<ExecutionIO, "stream" | "display" | "clearOutput">,
    private readonly mode: "order" | "rank",
    size: number,
  ) {
    this.held = Array.from({ length: size }, () => []);
  }

  write(rank: number, name: StreamName, text: string): void {
    const key = `${rank}:${name}`;
    const pieces = ((this.partial.get(key) ?? "") + text).split("\n");
    this.partial.set(key, pieces.pop()!);
    for (const line of pieces) this.emit(rank, name, line);
  }

  /** Displays from a rank show as they come, in either mode (a picture has no line to prefix). */
  display(payload: DisplayPayload, update: boolean): void {
    this.io.display(payload, update);
  }

  clear(wait: boolean): void {
    this.io.clearOutput(wait);
  }

  /** An error no cell awaited (rank-guard.ts): shown at once on stderr in either mode, each line tagged. */
  backgroundError(rank: number, text: string): void {
    const lines = text.replace(/\n$/, "").split("\n");
    this.io.stream("stderr", lines.map((line) => `[rank ${rank}] ${line}\n`).join(""));
  }

  /** Flushes unfinished lines and, in `rank` mode, everything held. */
  finish(): void {
    for (const [key, rest] of this.partial) {
      if (rest === "") continue;
      const [rank, name] = key.split(":") as [string, StreamName];
      this.emit(Number(rank), name, rest);
    }
    this.partial.clear();
    if (this.mode !== "rank") return;
    for (const lines of this.held) {
      // Consecutive lines of one stream go out as one message.
      let run: { name: StreamName; text: string } | undefined;
      for (const { name, line } of lines) {
        if (run && run.name === name) run.text += line;
        else {
          if (run) this.io.stream(run.name, run.text);
          run = { name, text: line };
        }
      }
      if (run) this.io.stream(run.name, run.text);
      lines.length = 0;
    }
  }

  private emit(rank: number, name: StreamName, line: string): void {
    const tagged = `[rank ${rank}] ${line}\n`;
    if (this.mode === "rank") this.held[rank]!.push({ name, line: tagged });
    else this.io.stream(name, tagged);
  }
}
