/**
 * One model chunk of a pipeline (a run of consecutive model stages) and the
 * four passes the schedules ask of it, for one micro-batch at a time:
 *   forward(x)          -> output, and a stash kept for backward;
 *   backwardInput(dy)   -> d loss / d x (B), keeping what W needs;
 *   backwardWeights()   -> d loss / d params (W), freeing the stash;
 *   backward(dy)        -> both at once (BW), freeing the stash.
 *
 * Two ways to differentiate:
 * - stages that implement SplitBackwardStage (models/linear-chain.ts) give
 *   B and W as their own ops with no forward re-run: the stash is every
 *   stage's input, and B keeps every stage's output gradient for W;
 * - any other stage goes through TensorFlow.js's tape, which cannot be
 *   stopped half-way or kept across calls, so backward re-runs the chunk's
 *   forward under tf.grads from the stashed chunk input (as
 *   staged-backward.ts does); B and W then each re-run it.
 */
import * as tf from "@tensorflow/tfjs";
import type { SplitBackwardStage, Stage } from "./types";

/** What a chunk holds for one micro-batch between its forward and its last backward pass. */
interface Stash {
  /** every stage's input (split stages), or the chunk's input alone (tape) */
  inputs: tf.Tensor[];
  /** every stage's output gradient, or the chunk's; set by B, used by W */
  outputGrads?: tf.Tensor[];
}

export class PipelineChunk {
  readonly #stash = new Map<number, Stash>();
  readonly #split: boolean;
  /** the most micro-batches this chunk held at once since resetPeak() */
  peakStashed = 0;

  constructor(
    readonly stages: readonly Stage[],
    /** false for the model's first chunk when its input is not differentiable (token ids) */
    readonly differentiableInput: boolean,
  ) {
    this.#split = stages.every(isSplitBackward);
  }

  get params(): tf.Variable[] {
    return this.stages.flatMap((s) => s.params);
  }

  /** Micro-batches stashed now (counted from the live stash, not from the schedule). */
  get stashed(): number {
    return this.#stash.size;
  }

  /** Bytes of the tensors stashed now. */
  get stashedBytes(): number {
    let bytes = 0;
    for (const s of this.#stash.values()) for (const t of [...s.inputs, ...(s.outputGrads ?? [])]) bytes += 4 * t.size;
    return bytes;
  }

  resetPeak(): void {
    this.peakStashed = this.#stash.size;
  }

  /** The chunk's output for micro-batch `mb`; x is kept (the caller must not dispose it). */
  forward(mb: number, x: tf.Tensor): tf.Tensor {
    if (this.#stash.has(mb)) throw new Error(`pipeline chunk: micro-batch ${mb} is already stashed (forward ran twice)`);
    const inputs: tf.Tensor[] = [x];
    const out = tf.tidy(() => {
      let h = x;
      this.stages.forEach((stage, i) => {
        h = stage.forward(h, stage.params);
        if (this.#split && i < this.stages.length - 1) inputs.push(tf.keep(h));
      });
      return h;
    });
    this.#stash.set(mb, { inputs: this.#split ? inputs : [x] });
    this.peakStashed = Math.max(this.peakStashed, this.#stash.size);
    return out;
  }

  /** B: d loss / d input of micro-batch `mb` (null when the input is not differentiable); keeps dy for W. */
  backwardInput(mb: number, dy: tf.Tensor): tf.Tensor | null {
    const stash = this.#take(mb, false);
    if (this.#split) {
      const grads: tf.Tensor[] = new Array(this.stages.length);
      let g = dy;
      for (let i = this.stages.length - 1; i >= 0; i--) {
        grads[i] = g;
        if (i === 0 && !this.differentiableInput) break;
        const stage = this.stages[i] as SplitBackwardStage;
        g = tf.tidy(() => stage.backwardInput(stash.inputs[i]!, grads[i]!, stage.params));
      }
      stash.outputGrads = grads;
      return this.differentiableInput ? g : null;
    }
    stash.outputGrads = [dy];
    if (!this.differentiableInput) return null;
    return tf.tidy(() => tf.grads((x: tf.Tensor) => this.#chain(x, this.#paramValues()))([stash.inputs[0]!], dy)[0]!);
  }

  /** W: d loss / d params of micro-batch `mb`, in `params` order; frees its stash. */
  backwardWeights(mb: number): tf.Tensor[] {
    const stash = this.#take(mb, true);
    if (!stash.outputGrads) throw new Error(`pipeline chunk: W of micro-batch ${mb} before its B`);
    try {
      if (this.#split) {
        return this.stages.flatMap((stage, i) => {
          const s = stage as SplitBackwardStage;
          return tf.tidy(() => s.backwardWeights(stash.inputs[i]!, stash.outputGrads![i]!, s.params));
        });
      }
      const x = stash.inputs[0]!;
      return tf.tidy(() => tf.grads((...ps: tf.Tensor[]) => this.#chain(x, ps))(this.#paramValues(), stash.outputGrads![0]!));
    } finally {
      tf.dispose([...stash.inputs, ...stash.outputGrads]);
    }
  }

  /** BW: input gradient (or null) and parameter gradients of micro-batch `mb`; frees its stash. */
  backward(mb: number, dy: tf.Tensor): { dx: tf.Tensor | null; grads: tf.Tensor[] } {
    if (this.#split) {
      const dx = this.backwardInput(mb, tf.clone(dy));
      return { dx, grads: this.backwardWeights(mb) };
    }
    const stash = this.#take(mb, true);
    try {
      const x = stash.inputs[0]!;
      const values = this.#paramValues();
      if (!this.differentiableInput) {
        return { dx: null, grads: tf.tidy(() => tf.grads((...ps: tf.Tensor[]) => this.#chain(x, ps))(values, dy)) };
      }
      const all = tf.tidy(() => tf.grads((input: tf.Tensor, ...ps: tf.Tensor[]) => this.#chain(input, ps))([x, ...values], dy));
      return { dx: all[0]!, grads: all.slice(1) };
    } finally {
      tf.dispose(stash.inputs);
    }
  }

  /** Drops every stash (after a failed step). */
  clear(): void {
    for (const s of this.#stash.values()) tf.dispose([...s.inputs, ...(s.outputGrads ?? [])]);
    this.#stash.clear();
  }

  #take(mb: number, remove: boolean): Stash {
    const stash = this.#stash.get(mb);
    if (!stash) throw new Error(`pipeline chunk: micro-batch ${mb} is not stashed (backward before forward)`);
    if (remove) this.#stash.delete(mb);
    return stash;
  }

  #paramValues(): tf.Tensor[] {
    return this.params.map((p) => p as tf.Tensor);
  }

  /** The chunk's forward with `params` (flat, in `params` order) standing in for the variables. */
  #chain(x: tf.Tensor, params: readonly tf.Tensor[]): tf.Tensor {
    let offset = 0;
    let h = x;
    for (const stage of this.stages) {
      h = stage.forward(h, params.slice(offset, offset + stage.params.length) as tf.Tensor[]);
      offset += stage.params.length;
    }
    return h;
  }
}

function isSplitBackward(stage: Stage): stage is SplitBackwardStage {
  const s = stage as Partial<SplitBackwardStage>;
  return typeof s.backwardInput === "function" && typeof s.backwardWeights === "function";
}

/**
 * Consecutive model stages into `count` chunks, as even as the counts allow (later chunks get
 * the extra stages): [start, end) indices into the model's stages.
 */
export function splitLayers(layers: number, count: number): { start: number; end: number }[] {
  return Array.from({ length: count }, (_, c) => ({ start: Math.floor((c * layers) / count), end: Math.floor(((c + 1) * layers) / count) }));
}
