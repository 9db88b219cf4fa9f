/** `import ... from "distlab/data"` in a cell: seeded datasets, the distributed sampler, the corpus. */
export { seededRandom, normalArray, shuffleInPlace, type Random } from "./random";
export { shardIndices, type ShardOptions } from "./sampler";
export { linearRegression, teacherClassification, selectRows, type Dataset, type SyntheticOptions } from "./synthetic";
export { datasetBatch, tokenBatch, tokenBatches, splitBatch, type TensorBatch } from "./batches";
export { CharTokenizer } from "./tokenizer";
export { loadCorpus, CORPUS_DIR, type Corpus } from "./corpus";
