/**
 * A multi-layer perceptron of configurable widths, as a staged model: one
 * stage per linear layer, so backward can run layer by layer (DDP).
 *   h_0 = x;  h_l = act(h_{l-1} W_l + b_l);  output = h_{L-1} W_L + b_L
 */
import * as tf from "@tensorflow/tfjs";
import type { TensorBatch } from "../data/batches";
import { seededRandom } from "../data/random";
import type { Stage, StagedModel } from "../techniques/types";
import { constantVariable, normalVariable } from "./init";
import { meanSquaredError, softmaxCrossEntropy } from "./losses";

export interface MlpOptions {
  /** Layer widths from input to output, e.g. [784, 512, 512, 10]; at least two entries. */
  sizes: number[];
  /** Activation between layers. Default "relu". */
  activation: "relu" | "tanh";
  /** "regression": mean squared error against float targets; "classification": softmax cross-entropy against int class ids. Default "classification". */
  task: "regression" | "classification";
  /** Seed of the initial weights; equal seeds give equal weights on every rank. Default 0. */
  seed: number;
}

export const MLP_DEFAULTS: MlpOptions = { sizes: [32, 64, 10], activation: "relu", task: "classification", seed: 0 };

export function validateMlpOptions(options: Partial<MlpOptions>): MlpOptions {
  const o = { ...MLP_DEFAULTS, ...options };
  if (!Array.isArray(o.sizes) || o.sizes.length < 2) throw new RangeError(`mlp.sizes must list at least 2 widths, got ${JSON.stringify(o.sizes)}`);
  o.sizes.forEach((width, i) => {
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`mlp.sizes[${i}] must be an integer >= 1, got ${width}`);
  });
  if (o.activation !== "relu" && o.activation !== "tanh") throw new RangeError(`mlp.activation must be relu|tanh, got ${String(o.activation)}`);
  if (o.task !== "regression" && o.task !== "classification") throw new RangeError(`mlp.task must be regression|classification, got ${String(o.task)}`);
  return o;
}

export interface Mlp extends StagedModel<TensorBatch> {
  readonly options: MlpOptions;
  /** The network's output for x [batch, sizes[0]]: [batch, sizes[last]]. */
  predict(x: tf.Tensor): tf.Tensor;
}

export function createMlp(options: Partial<MlpOptions> = {}): Mlp {
  const o = validateMlpOptions(options);
  const random = seededRandom(o.seed);
  const last = o.sizes.length - 2;
  const stages: Stage[] = o.sizes.slice(1).map((width, l) => {
    const fanIn = o.sizes[l]!;
    // He init for relu, Glorot-like for tanh and the output layer
    const std = o.activation === "relu" && l < last ? Math.sqrt(2 / fanIn) : Math.sqrt(1 / fanIn);
    const weight = normalVariable(random, [fanIn, width], std); // [in, out]
    const bias = constantVariable([width], 0); // [out]
    return {
      name: `linear${l}`,
      params: [weight, bias],
      differentiableInput: l > 0,
      forward(input: tf.Tensor, [w, b]: tf.Tensor[]): tf.Tensor {
        const z = tf.add(tf.matMul(input as tf.Tensor2D, w as tf.Tensor2D), b!); // [batch, out]
        if (l === last) return z;
        return o.activation === "relu" ? tf.relu(z) : tf.tanh(z);
      },
    };
  });
  const predict = (x: tf.Tensor): tf.Tensor => stages.reduce((h, stage) => stage.forward(h, stage.params), x);
  const head = (output: tf.Tensor, batch: TensorBatch): tf.Scalar =>
    o.task === "regression" ? meanSquaredError(output, batch.y) : softmaxCrossEntropy(output, batch.y);
  return {
    options: o,
    stages,
    params: stages.flatMap((s) => s.params),
    input: (batch) => batch.x,
    head,
    predict,
    loss: (batch) => tf.tidy(() => head(predict(batch.x), batch)),
  };
}
