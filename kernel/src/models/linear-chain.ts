/**
 * A chain of square linear layers, y_l = y_{l-1} W_l (W_l [width, width], no bias, no
 * activation), with a mean-squared-error head. Each layer's three passes are one matmul
 * of the same size, batch x width x width multiply-adds:
 *   forward           y  = x W
 *   input gradient    dx = dy W^T
 *   weight gradient   dW = x^T dy
 * so T_F = T_B = T_W by construction, with no sleeps: the model split that the
 * zero-bubble pipeline's bubble figure assumes (Qi et al. 2023). Every layer is a
 * SplitBackwardStage, so a pipeline can run B and W apart without re-running forward.
 */
import * as tf from "@tensorflow/tfjs";
import type { TensorBatch } from "../data/batches";
import { seededRandom } from "../data/random";
import type { SplitBackwardStage, StagedModel } from "../techniques/types";
import { normalVariable } from "./init";
import { meanSquaredError } from "./losses";

export interface LinearChainOptions {
  /** Features in, out and between layers. Default 64. */
  width: number;
  /** Number of layers (model stages). Default 8. */
  layers: number;
  /** Seed of the initial weights. Default 0. */
  seed: number;
}

export const LINEAR_CHAIN_DEFAULTS: LinearChainOptions = { width: 64, layers: 8, seed: 0 };

export function validateLinearChainOptions(options: Partial<LinearChainOptions>): LinearChainOptions {
  const o = { ...LINEAR_CHAIN_DEFAULTS, ...options };
  for (const key of Object.keys(options)) {
    if (!(key in LINEAR_CHAIN_DEFAULTS)) throw new TypeError(`linearChain.${key} is not an option; known: ${Object.keys(LINEAR_CHAIN_DEFAULTS).join(", ")}`);
  }
  for (const key of ["width", "layers"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`linearChain.${key} must be an integer >= 1, got ${o[key]}`);
  }
  return o;
}

export interface LinearChain extends StagedModel<TensorBatch> {
  readonly options: LinearChainOptions;
  readonly stages: readonly SplitBackwardStage[];
}

export function createLinearChain(options: Partial<LinearChainOptions> = {}): LinearChain {
  const o = validateLinearChainOptions(options);
  const random = seededRandom(o.seed);
  const stages: SplitBackwardStage[] = Array.from({ length: o.layers }, (_, l) => ({
    name: `linear${l}`,
    // std 1/sqrt(width) keeps the activations' scale through the chain
    params: [normalVariable(random, [o.width, o.width], 1 / Math.sqrt(o.width))],
    // The first layer's input gradient is computed too (as if an earlier layer fed it), so every
    // pipeline stage's B costs the same.
    differentiableInput: true,
    forward: (x, [w]) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), // [batch, width]
    backwardInput: (_x, dy, [w]) => tf.matMul(dy as tf.Tensor2D, w as tf.Tensor2D, false, true), // dy W^T [batch, width]
    // x^T dy [width, width]; x transposed first (a copy of batch x width), since a matMul with a
    // transposed first operand takes a slower path than the forward's plain one on the wasm backend
    backwardWeights: (x, dy) => [tf.matMul(tf.transpose(x as tf.Tensor2D), dy as tf.Tensor2D)],
  }));
  const predict = (x: tf.Tensor): tf.Tensor => stages.reduce((h, stage) => stage.forward(h, stage.params), x);
  const head = (output: tf.Tensor, batch: TensorBatch): tf.Scalar => meanSquaredError(output, batch.y);
  return {
    options: o,
    stages,
    params: stages.flatMap((s) => s.params),
    input: (batch) => batch.x,
    head,
    loss: (batch) => tf.tidy(() => head(predict(batch.x), batch)),
  };
}
