/**
 * A GPT-2-small-sized model: the tiny GPT's code (./tiny-gpt.ts) at GPT-2
 * small's sizes, 12 blocks of 768 channels and 12 heads over a 1,024-token
 * context, with the head tied to the token embedding. The vocabulary is
 * GPT-2's 50,257 BPE tokens rounded up to 50,304 (a multiple of 128, so the
 * head's matMul tiles evenly); the shipped character tokenizer
 * (../data/tokenizer.ts) is far smaller, and any vocabSize may be given.
 * 124,475,904 parameters (124,439,808 at 50,257, GPT-2 small's published count).
 *
 * Its activations at batch 8 hold several GiB: a GPU backend's size
 * (bench/gpu/gpt2-bench.ts trains it on WebGPU).
 */
import { createTinyGpt, validateTinyGptOptions, type TinyGpt, type TinyGptOptions } from "./tiny-gpt";

export const GPT2_SMALL: Readonly<TinyGptOptions> = { vocabSize: 50304, blockSize: 1024, nEmbd: 768, nHead: 12, nLayer: 12, seed: 0, tieEmbeddings: true };

/** GPT-2 small's sizes, any of them overridden (a smaller context or vocabulary, an untied head, another seed). */
export function createGpt2Small(overrides: Partial<TinyGptOptions> = {}): TinyGpt {
  return createTinyGpt({ ...GPT2_SMALL, ...overrides });
}

/**
 * Scalars in the parameters of createTinyGpt(options), from the shapes alone
 * (no tensors, so the full size can be counted anywhere):
 *   wte V*C + wpe T*C + per block (2 layer norms 4C, qkv 3C^2+3C, proj C^2+C, mlp 8C^2+5C) + final layer norm 2C + head C*V unless tied
 */
export function gptParameterCount(options: Partial<TinyGptOptions> & { vocabSize: number }): number {
  const { vocabSize: v, blockSize: t, nEmbd: c, nLayer: layers, tieEmbeddings } = validateTinyGptOptions(options);
  const block = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + (8 * c * c + 5 * c);
  return v * c + t * c + layers * block + 2 * c + (tieEmbeddings ? 0 : c * v);
}
