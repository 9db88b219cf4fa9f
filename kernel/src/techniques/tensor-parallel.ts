/**
 * Tensor parallelism (Shoeybi et al. 2019, Megatron-LM section 3) of the
 * tiny GPT (models/tiny-gpt.ts), optionally with sequence parallelism
 * (Korthikanti et al. 2022; sequence-parallel.ts).
 *
 * Each of the t ranks of `comm` holds:
 * - attention: the q, k, v columns of nHead/t heads (column-parallel W_qkv
 *   [C, 3C/t]) and the matching rows of the output projection (row-parallel
 *   W_proj [C/t, C]), so a rank's heads attend without talking to anyone;
 * - MLP: columns of W_up [C, 4C/t] and rows of W_down [4C/t, C], so the GELU
 *   runs on a rank's own columns;
 * - everything else (embeddings, layer norms, the biases after the
 *   row-parallel layers, the head) whole.
 * Per layer, the forward pass meets two conjugate pairs (f before each
 * column-parallel layer, g after each row-parallel one;
 * tensor-parallel-regions.ts): two allReduces of [seq, batch, C] forward
 * (g) and two backward (f), nothing else.
 *
 * With `sequenceParallel`, the layer norms, the dropouts and the residual
 * adds run on this rank's 1/t of the sequence, f becomes an all-gather
 * (reduce-scatter backward) and g a reduce-scatter (all-gather backward).
 * The embedding's output is sliced to the rank's positions (no traffic), the
 * head and loss run on those positions, and the gradients of the parameters
 * that saw only this rank's positions (embeddings, norms, the two biases,
 * the head) are summed over the ranks at the end of backward with the loss
 * in one allReduce.
 *
 * Forward and backward are written out per layer rather than left to
 * tf.grads over the whole model because the collectives are asynchronous
 * and TF.js differentiates only synchronous functions: each piece between
 * two communication points is differentiated on its own (tf.grads, which
 * recomputes that piece's forward), from the tensors the layer kept. The
 * layer keeps exactly the activations the papers count (see
 * `savedForBackward`): the attention scores are recomputed in backward, as
 * in Korthikanti's selective recomputation.
 *
 * Activations are laid out [seq, batch, C] (Megatron's order), so a
 * sequence slice is a contiguous block of the flat array.
 */
import * as tf from "@tensorflow/tfjs";
import { softmaxCrossEntropy } from "../compute/fused";
import type { TensorBatch } from "../data/batches";
import type { TinyGpt, TinyGptOptions } from "../models/tiny-gpt";
import { checkSequenceSplit } from "./sequence-parallel";
import { withSpan } from "./span";
import { TensorParallelBlock, type LayerTape } from "./tensor-parallel-block";
import { BLOCK_SPLITS, EMBEDDING_PARAMS, norm, shardTensor, vjp, type Split } from "./tensor-parallel-layers";
import { checkTensorParallelShape, validateTensorParallelOptions, type TensorParallelOptions } from "./tensor-parallel-options";
import { sequenceParallelRegions, tensorParallelRegions, type TensorParallelCollectives } from "./tensor-parallel-regions";

export { checkTensorParallelShape, TENSOR_PARALLEL_DEFAULTS, validateTensorParallelOptions, type TensorParallelOptions } from "./tensor-parallel-options";

/** What the model keeps past its blocks for backward: the inputs and the head's input. */
interface ModelTape {
  tokens: tf.Tensor; // [b, s] int32
  labels: tf.Tensor; // [b, sl] int32, this rank's positions
  final: tf.Tensor; // last layer's output, the head's input [sl, b, C]
  localLoss: number;
}

export interface TensorParallelForward {
  /** Logits of this rank's positions, [batch, end - start, vocab] row-major (all positions without sequence parallelism). */
  logits: Float32Array;
  /** The positions [start, end) of `logits`. */
  positions: [number, number];
}

export interface TensorParallelBackward {
  /** The batch's mean loss (the same on every rank). */
  loss: number;
  /** d loss / d local parameter, in `params` order (shards where the parameter is split). */
  grads: Float32Array[];
}

export class TensorParallelGpt {
  readonly options: TensorParallelOptions;
  /** Tensor-parallel degree t (ranks of `comm`). */
  readonly degree: number;
  /** This rank's parameters, one per parameter of the full model and in its order: a shard where split, else a copy. */
  readonly params: tf.Variable[];
  private readonly splits: Split[];
  private readonly fullShapes: number[][];
  /** one transformer block's forward and backward, shared by every block of this rank */
  private readonly block: TensorParallelBlock;
  private readonly gpt: TinyGptOptions;
  private tapes: LayerTape[] = [];
  private modelTape: ModelTape | undefined;
  /** the model stages [start, end) of the tape backwardStage is running; undefined otherwise */
  private stageRange: { start: number; end: number } | undefined;
  /**
   * Pipeline stages (compose.ts): each micro-batch's tape from forwardStage until its
   * backwardStage, by micro-batch. A 1F1B schedule holds up to p of them on stage 0.
   */
  private readonly stageTapes = new Map<number, { tapes: LayerTape[]; model: ModelTape; range: { start: number; end: number } }>();
  private forwardCount = 0;

  /**
   * Cuts `model`'s parameters for rank `comm.rank` of `comm.size`; the model itself is left as it is.
   * Throws before any communication when the hidden size or head count does not divide by comm.size.
   */
  constructor(
    model: TinyGpt,
    readonly comm: TensorParallelCollectives,
    options: Partial<TensorParallelOptions> = {},
  ) {
    this.options = validateTensorParallelOptions(options);
    this.degree = comm.size;
    checkTensorParallelShape(model.options, this.degree);
    this.gpt = model.options;
    const regions = this.options.sequenceParallel ? sequenceParallelRegions(comm) : tensorParallelRegions(comm);
    this.block = new TensorParallelBlock(regions, this.options, comm.rank, this.degree, this.gpt.nHead);
    this.splits = model.params.map((_, i) => {
      const inBlock = i - EMBEDDING_PARAMS;
      return inBlock >= 0 && inBlock < 12 * this.gpt.nLayer ? BLOCK_SPLITS[inBlock % 12]! : { kind: "replicated" as const };
    });
    this.fullShapes = model.params.map((p) => [...p.shape]);
    this.params = model.params.map((p, i) => {
      const shard = shardTensor(p, this.splits[i]!, comm.rank, this.degree);
      const variable = tf.variable(shard, false);
      shard.dispose();
      return variable;
    });
  }

  /** This rank's part of full-model arrays (one per parameter of the full model, as localGradients returns): to compare with a one-rank run. */
  async shardOf(full: readonly Float32Array[]): Promise<Float32Array[]> {
    return Promise.all(
      full.map(async (values, i) => {
        const whole = tf.tensor(values, this.fullShapes[i]!);
        const part = shardTensor(whole, this.splits[i]!, this.comm.rank, this.degree);
        whole.dispose();
        const out = Float32Array.from(await part.data());
        part.dispose();
        return out;
      }),
    );
  }

  /**
   * The tensors layer `layer` keeps from forward for its backward (valid until the next forward).
   * Their bytes are the activation memory the papers count: the layer's input counts, its output
   * is the next layer's input.
   */
  savedForBackward(layer: number): tf.Tensor[] {
    const tape = this.tapes[layer];
    if (tape === undefined) throw new RangeError(`tensorParallel.savedForBackward: no layer ${layer} on the tape (${this.tapes.length} layers; run forward first)`);
    return Object.values(tape).filter((t): t is tf.Tensor => t !== undefined);
  }

  /** Every tensor kept for backward: the layers', the tokens and labels, the head's input. */
  allSavedForBackward(): tf.Tensor[] {
    const m = this.modelTape;
    return [...this.tapes.flatMap((_, i) => this.savedForBackward(i)), ...(m ? [m.tokens, m.labels, m.final] : [])];
  }

  /**
   * Forward over batch.x [batch, seq] int tokens (labels batch.y [batch, seq]); keeps the activations
   * for `backward`. With sequence parallelism seq must divide by the degree (checked before anything runs).
   */
  async forward(batch: TensorBatch): Promise<TensorParallelForward> {
    const [b, s] = batch.x.shape as [number, number];
    if (s > this.gpt.blockSize) throw new RangeError(`tensorParallel.forward: the sequence length (${s}) exceeds tinyGpt.blockSize (${this.gpt.blockSize})`);
    if (this.options.sequenceParallel) checkSequenceSplit(s, this.degree);
    this.release();
    const step = this.forwardCount++;
    const [start, end] = this.positions(s);
    const tokens = tf.clone(batch.x);
    const labels = tf.tidy(() => tf.slice(batch.y, [0, start], [b, end - start]));
    let h = withSpan(this.comm, "embedding", () => tf.tidy(() => this.embed(tokens, this.params[0]!, this.params[1]!)));
    for (let layer = 0; layer < this.gpt.nLayer; layer++) {
      h = await withSpan(this.comm, `forward block${layer}`, () => this.layerForward(layer, h, step));
    }
    const [gain, bias, wHead] = this.headParams();
    const { logits, localLoss } = await withSpan(this.comm, "head", async () => {
      const [out, loss] = tf.tidy(() => {
        const headOut = this.headLogits(h, gain, bias, wHead);
        return [headOut, this.localLoss(headOut, labels)];
      });
      // Read asynchronously: a GPU rank has no synchronous read.
      const [outValues, lossValues] = await Promise.all([out.data() as Promise<Float32Array>, loss.data()]);
      tf.dispose([out, loss]);
      return { logits: outValues, localLoss: lossValues[0]! };
    });
    this.modelTape = { tokens, labels, final: h, localLoss };
    return { logits: Float32Array.from(logits), positions: [start, end] };
  }

  /** Backward from the last forward: the loss and this rank's gradients; frees the tape. */
  async backward(): Promise<TensorParallelBackward> {
    const m = this.modelTape;
    if (m === undefined) throw new Error("tensorParallel.backward: call forward first");
    const grads: (tf.Tensor | undefined)[] = this.params.map(() => undefined);
    const add = (index: number, g: tf.Tensor): void => {
      const previous = grads[index];
      grads[index] = previous === undefined ? g : tf.add(previous, g);
      if (previous !== undefined) tf.dispose([previous, g]);
    };
    const headIndex = this.params.length - 3;
    const [gain, bias, wHead] = this.headParams();
    let dh = withSpan(this.comm, "head backward", () => {
      const [dFinal, dGain, dBias, dW] = tf.grads((h: tf.Tensor, g: tf.Tensor, bb: tf.Tensor, w: tf.Tensor) => this.localLoss(this.headLogits(h, g, bb, w), m.labels))([m.final, gain, bias, wHead]);
      add(headIndex, dGain!);
      add(headIndex + 1, dBias!);
      add(headIndex + 2, dW!);
      return dFinal!;
    });
    for (let layer = this.gpt.nLayer - 1; layer >= 0; layer--) {
      const dOut = dh;
      dh = await withSpan(this.comm, `backward block${layer}`, () => this.layerBackward(layer, dOut, add));
      dOut.dispose();
    }
    withSpan(this.comm, "embedding backward", () => {
      const [dWte, dWpe] = vjp((wte, wpe) => this.embed(m.tokens, wte!, wpe!), [this.params[0]!, this.params[1]!], dh);
      add(0, dWte!);
      add(1, dWpe!);
    });
    dh.dispose();
    const out = await Promise.all(grads.map(async (g, i) => (g === undefined ? new Float32Array(this.params[i]!.size) : Float32Array.from(await g.data()))));
    tf.dispose(grads.filter((g): g is tf.Tensor => g !== undefined));
    let loss = m.localLoss;
    if (this.options.sequenceParallel) loss = await this.sumPartialGradients(out, loss);
    this.release();
    return { loss, grads: out };
  }

  /** forward, backward and plain SGD (p -= lr g on every local parameter); returns the loss. */
  async step(batch: TensorBatch, lr: number): Promise<number> {
    await this.forward(batch);
    const { loss, grads } = await this.backward();
    withSpan(this.comm, "sgd", () => {
      this.params.forEach((p, i) => {
        const g = tf.tensor(grads[i]!, p.shape);
        p.assign(tf.tidy(() => tf.sub(p, tf.mul(g, lr))));
        g.dispose();
      });
    });
    return loss;
  }

  /**
   * Forward of one pipeline stage of the cut model (compose.ts: TP inside pipeline stages, without
   * sequence parallelism): the model stages [range.start, range.end) in TinyGpt.stages order
   * (0 the embedding, 1..nLayer the blocks, nLayer + 1 the head). The first stage starts from
   * batch.x; the others from `input` [s, b, C], the previous stage's output (taken, disposed with
   * the tape). Returns this stage's output [s, b, C], or the batch's mean loss on the head's stage.
   * Keeps the tape of `microBatch` until its backwardStage, so a pipeline schedule may run
   * several forwards before their backwards (1F1B). Every rank of the TP group must run the
   * same micro-batches' passes in the same order: their allReduces pair up by call order.
   */
  async forwardStage(batch: TensorBatch, range: { start: number; end: number }, input?: tf.Tensor, microBatch = 0): Promise<{ output?: tf.Tensor; loss?: number }> {
    if (this.options.sequenceParallel) throw new RangeError("tensorParallel.forwardStage: sequence parallelism inside pipeline stages is not built");
    if (this.stageTapes.has(microBatch)) throw new Error(`tensorParallel.forwardStage: micro-batch ${microBatch} already holds a tape; run its backwardStage first`);
    this.releaseWorkingTape();
    const step = this.forwardCount++;
    const tokens = tf.clone(batch.x);
    const labels = tf.clone(batch.y);
    const head = this.gpt.nLayer + 1;
    let h = range.start === 0 ? tf.tidy(() => this.embed(tokens, this.params[0]!, this.params[1]!)) : input!;
    for (let stage = Math.max(range.start, 1); stage < Math.min(range.end, head); stage++) {
      h = await withSpan(this.comm, `forward block${stage - 1}`, () => this.layerForward(stage - 1, h, step));
    }
    let localLoss = Number.NaN;
    if (range.end > head) {
      const [gain, bias, wHead] = this.headParams();
      const loss = tf.tidy(() => this.localLoss(this.headLogits(h, gain, bias, wHead), labels));
      localLoss = (await loss.data())[0]!;
      loss.dispose();
    }
    this.stageTapes.set(microBatch, { tapes: this.tapes, model: { tokens, labels, final: h, localLoss }, range });
    this.tapes = [];
    return range.end > head ? { loss: localLoss } : { output: tf.clone(h) };
  }

  /**
   * Backward of the last forwardStage from dOut [s, b, C] (d loss / d this stage's output;
   * none on the head's stage). Adds scale x d loss / d parameter for this stage's parameters
   * into `into` (by parameter index) and returns d loss / d input [s, b, C] (none on the first stage).
   * Frees `microBatch`'s tape.
   */
  async backwardStage(dOut: tf.Tensor | undefined, scale: number, into: Map<number, Float32Array>, microBatch = 0): Promise<tf.Tensor | undefined> {
    const saved = this.stageTapes.get(microBatch);
    if (saved === undefined) throw new Error(`tensorParallel.backwardStage: micro-batch ${microBatch} has no tape; call forwardStage first`);
    this.stageTapes.delete(microBatch);
    this.releaseWorkingTape();
    // layerBackward reads this.tapes: the micro-batch's tape becomes the working one, freed at the end.
    this.tapes = saved.tapes;
    this.modelTape = saved.model;
    this.stageRange = saved.range;
    const m = saved.model;
    const range = saved.range;
    const grads = new Map<number, tf.Tensor>();
    const add = (index: number, g: tf.Tensor): void => {
      const previous = grads.get(index);
      grads.set(index, previous === undefined ? g : tf.add(previous, g));
      if (previous !== undefined) tf.dispose([previous, g]);
    };
    const head = this.gpt.nLayer + 1;
    let dh: tf.Tensor;
    if (range.end > head) {
      const headIndex = this.params.length - 3;
      const [gain, bias, wHead] = this.headParams();
      const [dFinal, dGain, dBias, dW] = tf.grads((h: tf.Tensor, g: tf.Tensor, bb: tf.Tensor, w: tf.Tensor) => this.localLoss(this.headLogits(h, g, bb, w), m.labels))([m.final, gain, bias, wHead]);
      add(headIndex, dGain!);
      add(headIndex + 1, dBias!);
      add(headIndex + 2, dW!);
      dh = dFinal!;
    } else {
      dh = tf.clone(dOut!);
    }
    for (let stage = Math.min(range.end, head) - 1; stage >= Math.max(range.start, 1); stage--) {
      const d = dh;
      dh = await withSpan(this.comm, `backward block${stage - 1}`, () => this.layerBackward(stage - 1, d, add));
      d.dispose();
    }
    let dInput: tf.Tensor | undefined = dh;
    if (range.start === 0) {
      const [dWte, dWpe] = vjp((wte, wpe) => this.embed(m.tokens, wte!, wpe!), [this.params[0]!, this.params[1]!], dh);
      add(0, dWte!);
      add(1, dWpe!);
      dh.dispose();
      dInput = undefined;
    }
    for (const [i, g] of grads) {
      const values = (await g.data()) as Float32Array;
      const sum = into.get(i) ?? new Float32Array(values.length);
      for (let k = 0; k < sum.length; k++) sum[k]! += scale * values[k]!;
      into.set(i, sum);
    }
    tf.dispose([...grads.values()]);
    this.releaseWorkingTape();
    return dInput;
  }

  /** How many micro-batches' tapes forwardStage holds (pipeline stages), counted from the live tapes. */
  get stagedMicroBatches(): number {
    return this.stageTapes.size;
  }

  /** Frees what the last forward kept, and every micro-batch's tape of forwardStage. */
  release(): void {
    this.releaseWorkingTape();
    for (const saved of this.stageTapes.values()) {
      this.tapes = saved.tapes;
      this.modelTape = saved.model;
      this.releaseWorkingTape();
    }
    this.stageTapes.clear();
  }

  /** Frees the tape forward or backwardStage works on. */
  private releaseWorkingTape(): void {
    // a pipeline stage keeps only its own blocks: the others are holes
    for (const tape of this.tapes) if (tape) tf.dispose(Object.values(tape).filter((t): t is tf.Tensor => t !== undefined));
    this.tapes = [];
    if (this.modelTape) tf.dispose([this.modelTape.tokens, this.modelTape.labels, this.modelTape.final]);
    this.modelTape = undefined;
    this.stageRange = undefined;
  }

  dispose(): void {
    this.release();
    tf.dispose(this.params);
  }

  private positions(seq: number): [number, number] {
    return this.block.positions(seq);
  }

  private headParams(): [tf.Variable, tf.Variable, tf.Variable] {
    const n = this.params.length;
    return [this.params[n - 3]!, this.params[n - 2]!, this.params[n - 1]!];
  }

  private layerParams(layer: number): tf.Variable[] {
    const first = EMBEDDING_PARAMS + 12 * layer;
    return this.params.slice(first, first + 12);
  }

  /** Block `layer` forward from x [sl, b, C]; keeps its tape in this.tapes; returns its output [sl, b, C]. */
  private async layerForward(layer: number, x: tf.Tensor, step: number): Promise<tf.Tensor> {
    const { out, tape } = await this.block.forward(this.layerParams(layer), layer, x, step);
    this.tapes[layer] = tape;
    return out;
  }

  /** Block `layer` backward from dOut [sl, b, C] with its tape; adds its gradients by parameter index; returns d input [sl, b, C]. */
  private layerBackward(layer: number, dOut: tf.Tensor, add: (index: number, g: tf.Tensor) => void): Promise<tf.Tensor> {
    const first = EMBEDDING_PARAMS + 12 * layer;
    return this.block.backward(this.layerParams(layer), this.tapes[layer]!, dOut, (inBlock, g) => add(first + inBlock, g));
  }

  /** tokens [b, s] -> this rank's positions of wte[tokens] + wpe, as [sl, b, C]. */
  private embed(tokens: tf.Tensor, wte: tf.Tensor, wpe: tf.Tensor): tf.Tensor {
    const [b, s] = tokens.shape as [number, number];
    const C = this.gpt.nEmbd;
    const summed = tf.add(tf.gather(wte, tokens.toInt()), tf.slice(wpe, [0, 0], [s, C])); // [b, s, C]
    const [start, end] = this.positions(s);
    return tf.slice(tf.transpose(summed, [1, 0, 2]), [start, 0, 0], [end - start, b, C]);
  }

  /** h [sl, b, C] -> logits [b, sl, vocab] (final norm and head, whole on every rank). */
  private headLogits(h: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor, wHead: tf.Tensor): tf.Tensor {
    const [sl, b, C] = h.shape as [number, number, number];
    const normed = norm(tf.transpose(h, [1, 0, 2]), gain, bias); // [b, sl, C]
    const flat = tf.matMul(tf.reshape(normed, [b * sl, C]) as tf.Tensor2D, wHead as tf.Tensor2D);
    return tf.reshape(flat, [b, sl, wHead.shape[1]!]);
  }

  /** This rank's share of the batch's mean loss: the mean over its positions, over t with sequence parallelism (shares sum to the mean). */
  private localLoss(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
    const mean = softmaxCrossEntropy(tf, logits, labels);
    return (this.options.sequenceParallel ? tf.div(mean, this.degree) : mean) as tf.Scalar;
  }

  /**
   * Sequence parallelism: the whole parameters that saw only this rank's positions (embeddings, norms,
   * the biases after the row-parallel layers, the head) hold partial gradients; one allReduce sums
   * them, and the loss shares with them. Returns the summed loss; `grads` is updated in place.
   */
  private async sumPartialGradients(grads: Float32Array[], localLoss: number): Promise<number> {
    const partial = grads.map((_, i) => i).filter((i) => this.splits[i]!.kind === "replicated");
    const length = partial.reduce((n, i) => n + grads[i]!.length, 0);
    const packed = new Float32Array(length + 1);
    let offset = 0;
    for (const i of partial) {
      packed.set(grads[i]!, offset);
      offset += grads[i]!.length;
    }
    packed[length] = localLoss;
    const summed = await withSpan(this.comm, "sum partial gradients", () => this.comm.allReduce(packed, { op: "sum", algorithm: "ring" }), "comm");
    offset = 0;
    for (const i of partial) {
      grads[i]!.set(summed.subarray(offset, offset + grads[i]!.length));
      offset += grads[i]!.length;
    }
    return summed[length]!;
  }
}
