/** `import ... from "distlab/models"` in a cell: an MLP, a tiny character-level GPT and GPT-2 small's sizes of it, all staged models. */
export { createMlp, validateMlpOptions, MLP_DEFAULTS, type Mlp, type MlpOptions } from "./mlp";
export { createTinyGpt, validateTinyGptOptions, TINY_GPT_DEFAULTS, type TinyGpt, type TinyGptOptions } from "./tiny-gpt";
export { createGpt2Small, gptParameterCount, GPT2_SMALL } from "./gpt2";
export { meanSquaredError, softmaxCrossEntropy } from "./losses";
export { parameterCount } from "./init";
export { createLinearChain, validateLinearChainOptions, LINEAR_CHAIN_DEFAULTS, type LinearChain, type LinearChainOptions } from "./linear-chain";
