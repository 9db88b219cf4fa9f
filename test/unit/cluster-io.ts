/**
 * A real ExecutionIO sink for cluster tests: records what a cell sends to
 * the frontend, with an interrupt switch the test can pull.
 */
import type { CommManager, DisplayPayload, ExecutionIO } from "../../kernel/src/protocol/backend";

export class RecordingIO implements ExecutionIO {
  readonly executionCount = 1;
  readonly streams: Array<{ name: "stdout" | "stderr"; text: string }> = [];
  readonly displays: DisplayPayload[] = [];
  private readonly interrupter = new AbortController();
  readonly interruptSignal = this.interrupter.signal;
  readonly comms = {} as CommManager;

  stream(name: "stdout" | "stderr", text: string): void {
    this.streams.push({ name, text });
  }
  /** Per display: true for update_display_data. */
  readonly displayUpdates: boolean[] = [];
  display(payload: DisplayPayload, update?: boolean): void {
    this.displays.push(payload);
    this.displayUpdates.push(update === true);
  }
  clearOutput(): void {}
  input(): Promise<string> {
    return Promise.reject(new Error("no stdin in tests"));
  }
  interrupt(): void {
    this.interrupter.abort();
  }
  text(name: "stdout" | "stderr" = "stdout"): string {
    return this.streams.filter((s) => s.name === name).map((s) => s.text).join("");
  }
}
