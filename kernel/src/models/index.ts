/** `import ... from "distlab/models"` in a cell: an MLP and a tiny character-level GPT, both staged models. */
export { createMlp, validateMlpOptions, MLP_DEFAULTS, type Mlp, type MlpOptions } from "./mlp";
export { createTinyGpt, validateTinyGptOptions, TINY_GPT_DEFAULTS, type TinyGpt, type TinyGptOptions } from "./tiny-gpt";
export { meanSquaredError, softmaxCrossEntropy } from "./losses";
export { parameterCount } from "./init";
export { createLinearChain, validateLinearChainOptions, LINEAR_CHAIN_DEFAULTS, type LinearChain, type LinearChainOptions } from "./linear-chain";
