/**
 * The options of tensor parallelism (tensor-parallel.ts) and the checks run
 * before anything else: unknown keys, values out of range, and a model whose
 * hidden size or head count does not divide by the degree, each named.
 */
import type { TinyGptOptions } from "../models/tiny-gpt";
import { checkBoolean, checkInteger, checkKnownKeys, checkRange } from "./validate";

export interface TensorParallelOptions {
  /** Split layer norms, dropout and residual adds along the sequence (Korthikanti et al. 2022). Default false. */
  sequenceParallel: boolean;
  /**
   * Dropout probability after the attention's and the MLP's row-parallel layers, in [0, 1).
   * With 0 no masks are drawn or kept. Default 0.
   */
  dropout: number;
  /**
   * With sequence parallelism: a column-parallel layer keeps only this rank's sequence slice of its
   * input and all-gathers it again in backward (Megatron-LM's choice: 1/t of the memory, one more
   * all-gather per column-parallel layer in backward). False keeps the gathered input. Default true.
   */
  regatherInputs: boolean;
  /** Seed of the dropout masks (every rank draws the same full mask and uses its part). Default 0. */
  seed: number;
}

export const TENSOR_PARALLEL_DEFAULTS: TensorParallelOptions = { sequenceParallel: false, dropout: 0, regatherInputs: true, seed: 0 };

export function validateTensorParallelOptions(options: Partial<TensorParallelOptions>): TensorParallelOptions {
  checkKnownKeys("tensorParallel", options, TENSOR_PARALLEL_DEFAULTS);
  const o = { ...TENSOR_PARALLEL_DEFAULTS, ...options };
  checkBoolean("tensorParallel.sequenceParallel", o.sequenceParallel);
  checkRange("tensorParallel.dropout", o.dropout, 0, 1, { high: true });
  checkBoolean("tensorParallel.regatherInputs", o.regatherInputs);
  checkInteger("tensorParallel.seed", o.seed, 0);
  return o;
}

/** Throws, naming the values, unless the model's hidden size and head count divide by the degree. */
export function checkTensorParallelShape(model: Pick<TinyGptOptions, "nEmbd" | "nHead">, degree: number): void {
  checkInteger("tensorParallel: degree (ranks of the group)", degree, 1);
  const problems: string[] = [];
  if (model.nEmbd % degree !== 0) problems.push(`the hidden size tinyGpt.nEmbd (${model.nEmbd}) does not divide by the tensor-parallel degree (${degree})`);
  if (model.nHead % degree !== 0) problems.push(`the head count tinyGpt.nHead (${model.nHead}) does not divide by the tensor-parallel degree (${degree})`);
  if (problems.length > 0) throw new RangeError(`tensorParallel: ${problems.join("; ")}`);
}
