/**
 * A character-level GPT in the spirit of nanoGPT's model.py, small enough
 * that a training step takes well under a second on one core with the wasm
 * backend. Staged (embedding, n blocks, head) so that backward can run one
 * block at a time.
 *
 *   x = wte[tokens] + wpe[0..T)                      // [batch, time, channels]
 *   x = x + attention(layerNorm(x))                  // causal, nHead heads
 *   x = x + mlp(layerNorm(x))                        // C -> 4C -> C, GELU
 *   logits = layerNorm(x) W_head                     // [batch, time, vocab]
 *
 * The same code builds a GPT-2-small-sized model (./gpt2.ts): every size is
 * an option, and `tieEmbeddings` makes W_head = wte^T as GPT-2 does.
 */
import * as tf from "@tensorflow/tfjs";
import type { TensorBatch } from "../data/batches";
import { seededRandom } from "../data/random";
import type { Stage, StagedModel } from "../techniques/types";
import { causalAttention, linear, matMul, gelu as fusedGelu, layerNorm as fusedLayerNorm } from "../compute/fused";
import { constantVariable, normalVariable } from "./init";
import { softmaxCrossEntropy } from "./losses";

export interface TinyGptOptions {
  /** Number of distinct tokens (characters). Required. */
  vocabSize: number;
  /** Context length T in tokens. Default 32. */
  blockSize: number;
  /** Channels C (embedding width); must divide by nHead. Default 32. */
  nEmbd: number;
  /** Attention heads. Default 2. */
  nHead: number;
  /** Transformer blocks. Default 2. */
  nLayer: number;
  /** Seed of the initial weights. Default 0. */
  seed: number;
  /**
   * The head reuses the token embedding (logits = layerNorm(x) wte^T), as
   * GPT-2 does; saves vocabSize * nEmbd parameters. wte then sits in both
   * the embedding's and the head's stage params (model.params lists it
   * once): DDP sums its two stages' gradients before its bucket goes; a
   * pipeline, which places stages on different ranks, cannot split the model.
   * Default false.
   */
  tieEmbeddings: boolean;
}

export const TINY_GPT_DEFAULTS: Omit<TinyGptOptions, "vocabSize"> = { blockSize: 32, nEmbd: 32, nHead: 2, nLayer: 2, seed: 0, tieEmbeddings: false };

export function validateTinyGptOptions(options: Partial<TinyGptOptions>): TinyGptOptions {
  const o = { ...TINY_GPT_DEFAULTS, ...options } as TinyGptOptions;
  for (const key of ["vocabSize", "blockSize", "nEmbd", "nHead", "nLayer"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`tinyGpt.${key} must be an integer >= 1, got ${o[key]}`);
  }
  if (typeof o.tieEmbeddings !== "boolean") throw new TypeError(`tinyGpt.tieEmbeddings must be true or false, got ${String(o.tieEmbeddings)}`);
  if (o.nEmbd % o.nHead !== 0) throw new RangeError(`tinyGpt.nEmbd must divide by tinyGpt.nHead, got ${o.nEmbd} and ${o.nHead}`);
  return o;
}

/** (x - mean) / sqrt(var + eps) * gain + bias over the last axis. x [..., C]; fused kernels on webgpu (compute/fused). */
function layerNorm(x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  return fusedLayerNorm(tf, x, gain, bias, 1e-5);
}

/** GELU, tanh approximation (as GPT-2); fused kernels on webgpu. */
function gelu(x: tf.Tensor): tf.Tensor {
  return fusedGelu(tf, x);
}

/** x [batch, time, in] times w [in, out] plus b [out] -> [batch, time, out] */
function linear3d(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const [batch, time, width] = x.shape as [number, number, number];
  const flat = linear(tf, tf.reshape(x, [batch * time, width]), w, b); // [batch*time, out]
  return tf.reshape(flat, [batch, time, w.shape[1]!]);
}

export interface TinyGpt extends StagedModel<TensorBatch> {
  readonly options: TinyGptOptions;
  /** logits [batch, time, vocab] for tokens [batch, time] (time <= blockSize) */
  logits(tokens: tf.Tensor): tf.Tensor;
}

export function createTinyGpt(options: Partial<TinyGptOptions> & { vocabSize: number }): TinyGpt {
  const o = validateTinyGptOptions(options);
  const random = seededRandom(o.seed);
  const C = o.nEmbd;
  // GPT-2 scales the residual projections by 1/sqrt(2 * nLayer) so the residual stream's variance stays put.
  const residualStd = 0.02 / Math.sqrt(2 * o.nLayer);

  const tokenEmbedding = normalVariable(random, [o.vocabSize, C], 0.02); // wte [vocab, C]
  const embedding: Stage = {
    name: "embedding",
    params: [tokenEmbedding, normalVariable(random, [o.blockSize, C], 0.02)],
    differentiableInput: false,
    forward(tokens, [wte, wpe]) {
      const time = tokens.shape[1]!;
      const tokenEmbedding = tf.gather(wte!, tf.cast(tokens, "int32")); // [batch, time, C] (tf.cast: the GPU bench bundles tfjs-core, without chained ops)
      return tf.add(tokenEmbedding, tf.slice(wpe!, [0, 0], [time, C])); // + [time, C]
    },
  };

  const block = (index: number): Stage => ({
    name: `block${index}`,
    params: [
      constantVariable([C], 1), constantVariable([C], 0), // ln1 gain, bias
      normalVariable(random, [C, 3 * C], 0.02), constantVariable([3 * C], 0), // qkv projection
      normalVariable(random, [C, C], residualStd), constantVariable([C], 0), // attention output projection
      constantVariable([C], 1), constantVariable([C], 0), // ln2 gain, bias
      normalVariable(random, [C, 4 * C], 0.02), constantVariable([4 * C], 0), // mlp up
      normalVariable(random, [4 * C, C], residualStd), constantVariable([C], 0), // mlp down
    ],
    differentiableInput: true,
    forward(x, [g1, b1, wQkv, bQkv, wProj, bProj, g2, b2, wUp, bUp, wDown, bDown]) {
      const time = x.shape[1]!;
      const qkv = linear3d(layerNorm(x, g1!, b1!), wQkv!, bQkv!); // [batch, time, 3C]
      const merged = causalAttention(tf, qkv, { time, heads: o.nHead }); // [batch, time, C], causal, nHead heads of C / nHead
      const afterAttention = tf.add(x, linear3d(merged, wProj!, bProj!));
      const hidden = gelu(linear3d(layerNorm(afterAttention, g2!, b2!), wUp!, bUp!)); // [batch, time, 4C]
      return tf.add(afterAttention, linear3d(hidden, wDown!, bDown!)); // [batch, time, C]
    },
  });

  const head: Stage = {
    name: "head",
    // wHead [C, vocab], or wte [vocab, C] when tied
    params: [constantVariable([C], 1), constantVariable([C], 0), o.tieEmbeddings ? tokenEmbedding : normalVariable(random, [C, o.vocabSize], 0.02)],
    differentiableInput: true,
    forward(x, [gain, bias, wHead]) {
      const normed = layerNorm(x, gain!, bias!);
      const [batch, time] = x.shape as [number, number, number];
      const flat = matMul(tf, tf.reshape(normed, [batch * time, C]), wHead!, o.tieEmbeddings); // [batch*time, vocab]
      return tf.reshape(flat, [batch, time, o.vocabSize]); // [batch, time, vocab]
    },
  };

  const stages: Stage[] = [embedding, ...Array.from({ length: o.nLayer }, (_, i) => block(i)), head];
  const logits = (tokens: tf.Tensor): tf.Tensor => stages.reduce((h, stage) => stage.forward(h, stage.params), tokens);
  const lossHead = (output: tf.Tensor, batch: TensorBatch): tf.Scalar => softmaxCrossEntropy(output, batch.y);
  return {
    options: o,
    stages,
    params: [...new Set(stages.flatMap((s) => s.params))], // a tied wte once
    input: (batch) => batch.x,
    head: lossHead,
    logits,
    loss: (batch) => tf.tidy(() => lossHead(logits(batch.x), batch)),
  };
}
