/**
 * Activation checkpointing (Chen et al. 2016, "Training Deep Nets with
 * Sublinear Memory Cost"): keep only some layers' inputs from forward and
 * compute the others again in backward.
 *
 * A staged model's n layers are cut into segments of s consecutive layers
 * (the last one shorter when s does not divide n). Forward keeps only each
 * segment's input (the checkpoint) and frees the other layer outputs as soon
 * as the next layer has read them. Backward walks the segments last first:
 * it runs the segment's forward again from its checkpoint, keeping the
 * inputs of the segment's layers, then backpropagates through them layer by
 * layer, freeing each input once its layer's gradients exist.
 *
 * Layer inputs held for backward (the tensors a layer's backward reads),
 * counting the model input as layer 0's; k = ceil(n/s) segments:
 *   when backward starts          k           (n with s = 1: every layer input)
 *   peak, in backward of segment j   j + 1 checkpoints + (len_j - 1) recomputed
 *                                 = n/s + s - 1 when s divides n
 * which is smallest near s = sqrt(n): 2 sqrt(n) - 1 against n (the paper's
 * n/k + k, minimised at k = sqrt(n)). The price: the forward of every layer
 * that is not a segment's last runs twice, n - k layer forwards, about one
 * more forward pass for large s.
 *
 * s = 1 is plain backpropagation (every input kept, nothing recomputed); the
 * same code runs it, so the two compare like with like and their gradients
 * are bitwise equal.
 *
 * What is held is measured, not derived: every kept tensor goes through one
 * registry (`held` below), and at each change the registry's count and bytes
 * and the backend's own count (tf.memory().numBytes) are sampled; the step
 * reports their values when backward starts and at the peak. The forward,
 * each segment's recompute and each segment's backward are spans on the
 * rank's timeline ("forward", "recompute segment j", "backward segment j"),
 * and inside them one span per layer pass ("forward layer l", "recompute
 * layer l", "backward layer l"), from which the extra compute is read: the
 * count of recompute passes and their durations. A layer pass is short
 * (a matmul or a block), so on a busy machine most of them run without the
 * thread being descheduled and their median is the pass's compute time,
 * where a whole segment's span would also hold the time other processes ran.
 *
 * A stage with split backward halves (SplitBackwardStage: the linear chain)
 * differentiates from its input and dy directly; any other stage through
 * tf.grads, which runs that one layer's forward under the tape (inside a
 * layer, as staged-backward.ts does; the recompute spans count only the
 * checkpointing's own re-runs).
 */
import * as tf from "@tensorflow/tfjs";
import { readTensors } from "./gradients";
import { withSpan } from "./span";
import type { GradientArray, SplitBackwardStage, Stage, StagedModel } from "./types";
import { checkInteger, checkKnownKeys } from "./validate";

export interface ActivationCheckpointingOptions {
  /**
   * Layers per segment whose forward is recomputed in backward: an integer in [1, n] for a model of
   * n stages (1: plain backpropagation, nothing recomputed), or "sqrt" for round(sqrt(n)), the
   * paper's choice. Default "sqrt".
   */
  segmentSize: number | "sqrt";
}

export const ACTIVATION_CHECKPOINTING_DEFAULTS: ActivationCheckpointingOptions = { segmentSize: "sqrt" };

/** Checks the options against a model of `layers` stages; returns the segment size in layers. */
export function validateActivationCheckpointingOptions(options: Partial<ActivationCheckpointingOptions>, layers: number): number {
  checkKnownKeys("activationCheckpointing", options, ACTIVATION_CHECKPOINTING_DEFAULTS);
  const o = { ...ACTIVATION_CHECKPOINTING_DEFAULTS, ...options };
  checkInteger("activationCheckpointing: the model's number of stages", layers, 1);
  if (o.segmentSize === "sqrt") return Math.max(1, Math.round(Math.sqrt(layers)));
  if (typeof o.segmentSize !== "number" || !Number.isInteger(o.segmentSize) || o.segmentSize < 1 || o.segmentSize > layers) {
    throw new RangeError(
      `activationCheckpointing.segmentSize must be "sqrt" or an integer in [1, ${layers}] (the model has ${layers} layers), got ${typeof o.segmentSize === "string" ? JSON.stringify(o.segmentSize) : String(o.segmentSize)}`,
    );
  }
  return o.segmentSize;
}

/** The segments of `layers` layers cut every `segmentSize`: [first layer, end) each, in forward order. */
export function checkpointSegments(layers: number, segmentSize: number): [number, number][] {
  const segments: [number, number][] = [];
  for (let start = 0; start < layers; start += segmentSize) segments.push([start, Math.min(layers, start + segmentSize)]);
  return segments;
}

/**
 * Chen et al.'s count of layer inputs held at the peak of backward, for this cut: max over segments j of
 * (j + 1) checkpoints + (len_j - 1) recomputed inputs; n/s + s - 1 when s divides n, n at s = 1.
 */
export function peakHeldFormula(layers: number, segmentSize: number): number {
  return Math.max(...checkpointSegments(layers, segmentSize).map(([start, end], j) => j + 1 + (end - start - 1)));
}

/** Layer forwards run again in backward: every layer but each segment's last, n - ceil(n/s). */
export function recomputedLayersFormula(layers: number, segmentSize: number): number {
  return layers - checkpointSegments(layers, segmentSize).length;
}

/** Activation memory sampled at one moment of a step. */
export interface HeldSample {
  /** layer inputs in the kept-tensor registry (the model input counted as layer 0's) */
  tensors: number;
  /** their bytes */
  bytes: number;
  /** tf.memory().numBytes less its value before forward: what the backend holds for this step (kept inputs but the model input, plus the upstream gradient dy in backward) */
  backendBytes: number;
}

export interface CheckpointedGradients {
  /** the batch's loss */
  loss: number;
  /** d loss / d param, flattened, in model.params order */
  grads: GradientArray[];
  /** held when backward starts (after forward and the head's gradient) */
  atBackwardStart: HeldSample;
  /** held at the sample with the most registry bytes, over the whole step */
  peak: HeldSample;
}

/** Gradients of a staged model with its activations checkpointed every `segmentSize` layers. */
export class ActivationCheckpointing<B> {
  /** Layers per segment. */
  readonly segmentSize: number;
  /** [first layer, end) of each segment, in forward order. */
  readonly segments: readonly [number, number][];
  /** Index in model.params of each stage's first parameter. */
  readonly #paramOffsets: number[];

  /** `dist`: the rank's dist (spans on its timeline); anything without `span` runs without spans. */
  constructor(
    readonly model: StagedModel<B>,
    options: Partial<ActivationCheckpointingOptions> = {},
    readonly dist?: unknown,
  ) {
    this.segmentSize = validateActivationCheckpointingOptions(options, model.stages.length);
    this.segments = checkpointSegments(model.stages.length, this.segmentSize);
    let offset = 0;
    this.#paramOffsets = model.stages.map((stage) => ((offset += stage.params.length), offset - stage.params.length));
    if (offset !== model.params.length) throw new RangeError(`activationCheckpointing: the stages hold ${offset} parameters, model.params ${model.params.length}`);
  }

  /** Forward and backward of one batch; the loss, the gradients and the activation memory measured. */
  async gradients(batch: B): Promise<CheckpointedGradients> {
    const stages = this.model.stages;
    const baseline = tf.memory().numBytes;
    // The kept-tensor registry: layer index -> that layer's input, while a backward still needs it.
    const held = new Map<number, tf.Tensor>();
    let dy: tf.Tensor | undefined;
    let peak: HeldSample = { tensors: 0, bytes: 0, backendBytes: 0 };
    const sample = (): HeldSample => {
      let bytes = 0;
      for (const t of held.values()) bytes += t.size * bytesPerElement(t);
      const now = { tensors: held.size, bytes, backendBytes: tf.memory().numBytes - baseline };
      if (now.bytes > peak.bytes || (now.bytes === peak.bytes && now.tensors > peak.tensors)) peak = now;
      return now;
    };
    const keep = (layer: number, input: tf.Tensor): void => {
      held.set(layer, input);
      sample();
    };
    const release = (layer: number): void => {
      const t = held.get(layer);
      held.delete(layer);
      if (layer > 0) t?.dispose(); // layer 0's input belongs to the batch
    };
    const grads: GradientArray[] = this.model.params.map((p) => new Float32Array(p.size));
    try {
      // Forward: keep each segment's input, free every other layer output once the next layer has read it.
      const checkpoints = new Set(this.segments.map(([start]) => start));
      const lossTensor = withSpan(this.dist, "forward", () => {
        let h = this.model.input(batch);
        for (let layer = 0; layer < stages.length; layer++) {
          if (checkpoints.has(layer)) keep(layer, h);
          const input = h;
          const out = withSpan(this.dist, `forward layer ${layer}`, () => tf.tidy(() => stages[layer]!.forward(input, stages[layer]!.params)));
          if (!checkpoints.has(layer) && layer > 0) h.dispose();
          h = out;
        }
        // The head's loss and its gradient dy = d loss / d output [like output]; the output is not kept.
        const { value, grads: [dOut] } = tf.tidy(() => tf.valueAndGrads((out: tf.Tensor) => this.model.head(out, batch))([h]));
        h.dispose();
        dy = dOut!;
        return value;
      });
      const loss = (await lossTensor.data())[0]!;
      lossTensor.dispose();
      const atBackwardStart = sample();
      for (let j = this.segments.length - 1; j >= 0; j--) {
        const [start, end] = this.segments[j]!;
        withSpan(this.dist, `recompute segment ${j}`, () => {
          let h = held.get(start)!;
          for (let layer = start + 1; layer < end; layer++) {
            const input = h;
            h = withSpan(this.dist, `recompute layer ${layer - 1}`, () => tf.tidy(() => stages[layer - 1]!.forward(input, stages[layer - 1]!.params)));
            keep(layer, h);
          }
        });
        const segmentGrads = withSpan(this.dist, `backward segment ${j}`, () => {
          const out: { layer: number; grads: tf.Tensor[] }[] = [];
          for (let layer = end - 1; layer >= start; layer--) {
            const stage = stages[layer]!;
            const needInput = stage.differentiableInput && layer > 0;
            const upstream = dy!;
            const { dx, paramGrads } = withSpan(this.dist, `backward layer ${layer}`, () => tf.tidy(() => layerBackward(stage, held.get(layer)!, upstream, needInput)));
            dy!.dispose();
            dy = dx;
            release(layer);
            out.push({ layer, grads: paramGrads });
          }
          return out;
        });
        for (const { layer, grads: tensors } of segmentGrads) {
          const values = await readTensors(tensors);
          tf.dispose(tensors);
          values.forEach((g, i) => grads[this.#paramOffsets[layer]! + i]!.set(g));
        }
      }
      return { loss, grads, atBackwardStart, peak };
    } finally {
      for (const layer of [...held.keys()]) release(layer);
      (dy as tf.Tensor | undefined)?.dispose();
    }
  }
}

/** One layer's backward: its parameters' gradients and, when asked, its input's (else a scalar 0 placeholder). */
function layerBackward(stage: Stage, input: tf.Tensor, dy: tf.Tensor, needInput: boolean): { dx: tf.Tensor; paramGrads: tf.Tensor[] } {
  const params = stage.params.map((p) => p as tf.Tensor);
  if (isSplitBackward(stage)) {
    return { dx: needInput ? stage.backwardInput(input, dy, params) : tf.scalar(0), paramGrads: stage.backwardWeights(input, dy, params) };
  }
  const f = needInput ? (x: tf.Tensor, ...ps: tf.Tensor[]) => stage.forward(x, ps) : (...ps: tf.Tensor[]) => stage.forward(input, ps);
  const all = tf.grads(f)(needInput ? [input, ...params] : params, dy);
  return needInput ? { dx: all[0]!, paramGrads: all.slice(1) } : { dx: tf.scalar(0), paramGrads: all };
}

function isSplitBackward(stage: Stage): stage is SplitBackwardStage {
  const s = stage as Partial<SplitBackwardStage>;
  return typeof s.backwardInput === "function" && typeof s.backwardWeights === "function";
}

/** Bytes an element of t takes in the backend (bool 1, complex64 8, float32 and int32 4). */
function bytesPerElement(t: tf.Tensor): number {
  return t.dtype === "bool" ? 1 : t.dtype === "complex64" ? 8 : 4;
}
