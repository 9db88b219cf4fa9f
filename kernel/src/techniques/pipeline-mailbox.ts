/**
 * Where a pipeline stage's incoming messages wait until a pass takes them. The communicator's
 * point-to-point messages carry no tag, and between two ranks they arrive in the order they
 * were sent; with interleaved chunks one pair of ranks carries activations and gradients at
 * once, and a stage may need them in another order than they come. Every rank knows every
 * stage's schedule, so the receiver knows each peer's send order: it receives in that order and
 * keeps what arrives before it is needed.
 */
import * as tf from "@tensorflow/tfjs";
import type { PipelineComm } from "./pipeline-parallel";
import type { PipelineSchedule } from "./pipeline-schedules";

/**
 * The messages a stage receives, taken by name. Messages between two ranks arrive in the
 * order the sender sent them; the receiver knows that order (every rank knows every stage's
 * schedule), so it receives them in it and keeps any that arrive before they are needed.
 * Names: `A:c:mb` the input activation of chunk c, `G:c:mb` the gradient of chunk c's output.
 */
export class Mailbox {
  readonly #expected = new Map<number, string[]>();
  readonly #arrived = new Map<string, tf.Tensor>();

  constructor(
    private readonly comm: PipelineComm,
    schedule: PipelineSchedule,
    private readonly shapes: number[][],
    chunks: number,
  ) {
    const p = schedule.length;
    const last = p * chunks - 1;
    schedule.forEach((ops, from) => {
      if (from === comm.rank) return;
      const names: string[] = [];
      for (const op of ops) {
        if (op.kind === "F" && op.chunk < last && (op.chunk + 1) % p === comm.rank) names.push(`A:${op.chunk + 1}:${op.microBatch}`);
        if ((op.kind === "B" || op.kind === "BW") && op.chunk > 0 && (op.chunk - 1) % p === comm.rank) names.push(`G:${op.chunk - 1}:${op.microBatch}`);
      }
      this.#expected.set(from, names);
    });
  }

  /** A message this rank hands itself (chunk c and c + 1 on one stage). */
  keep(name: string, tensor: tf.Tensor): void {
    this.#arrived.set(name, tensor);
  }

  async take(name: string, from: number): Promise<tf.Tensor> {
    const [kind, chunkText] = name.split(":");
    const chunk = Number(chunkText);
    const shape = kind === "A" ? this.shapes[chunk - 1]! : this.shapes[chunk]!;
    const queue = this.#expected.get(from) ?? [];
    while (!this.#arrived.has(name)) {
      const next = queue.shift();
      if (next === undefined) throw new Error(`pipeline: stage ${from} never sends ${name} to stage ${this.comm.rank}`);
      const [nextKind, nextChunkText] = next.split(":");
      const nextShape = nextKind === "A" ? this.shapes[Number(nextChunkText) - 1]! : this.shapes[Number(nextChunkText)]!;
      const data = await this.comm.irecv(new Float32Array(nextShape.reduce((a, b) => a * b, 1)), from);
      this.#arrived.set(next, tf.tensor(data, nextShape));
    }
    const tensor = this.#arrived.get(name)!;
    this.#arrived.delete(name);
    if (tensor.shape.join() !== shape.join()) throw new Error(`pipeline: ${name} has shape ${tensor.shape}, expected ${shape}`);
    return tensor;
  }
}
