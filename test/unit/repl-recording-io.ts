/** An ExecutionIO that records what a cell sends, for the REPL's tests. */
import type { DisplayPayload, ExecutionIO } from "../../kernel/src/protocol/backend";

export type Recorded =
  | { kind: "stream"; name: "stdout" | "stderr"; text: string }
  | { kind: "display"; payload: DisplayPayload; update: boolean }
  | { kind: "clear"; wait: boolean }
  | { kind: "input"; prompt: string };

export class RecordingIO implements ExecutionIO {
  static #count = 0;
  readonly executionCount = ++RecordingIO.#count;
  readonly events: Recorded[] = [];
  readonly controller = new AbortController();
  readonly interruptSignal = this.controller.signal;
  readonly comms = {
    registerTarget: () => undefined,
    open: () => {
      throw new Error("comms are not part of these tests");
    },
  };

  constructor(private readonly answers: string[] = []) {}

  stream(name: "stdout" | "stderr", text: string): void {
    this.events.push({ kind: "stream", name, text });
  }
  display(payload: DisplayPayload, update = false): void {
    this.events.push({ kind: "display", payload, update });
  }
  clearOutput(wait = false): void {
    this.events.push({ kind: "clear", wait });
  }
  async input(prompt: string): Promise<string> {
    this.events.push({ kind: "input", prompt });
    const answer = this.answers.shift();
    if (answer === undefined) throw new Error(`no answer prepared for prompt '${prompt}'`);
    return answer;
  }

  /** Everything streamed to `name`, concatenated. */
  text(name: "stdout" | "stderr"): string {
    return this.events.flatMap((e) => (e.kind === "stream" && e.name === name ? [e.text] : [])).join("");
  }
}
