/**
 * The text corpus shipped with the kernel (kernel/data/corpus/, see its
 * README for source and public-domain status): Genesis, King James Version.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CharTokenizer } from "./tokenizer";

/** kernel/data/corpus, from kernel/src/data or kernel/dist/data alike. */
export const CORPUS_DIR = path.resolve(__dirname, "..", "..", "data", "corpus");

export interface Corpus {
  text: string;
  tokenizer: CharTokenizer;
  /** the first (1 - valFraction) of the tokens */
  train: Int32Array;
  /** the last valFraction of the tokens */
  val: Int32Array;
}

/** Loads the corpus, optionally only its first `maxChars` characters; splits train/val like nanoGPT (90/10). */
export function loadCorpus(options: { maxChars?: number; valFraction?: number; file?: string } = {}): Corpus {
  const { maxChars = Infinity, valFraction = 0.1, file = "genesis-kjv.txt" } = options;
  if (!(valFraction > 0 && valFraction < 1)) throw new RangeError(`loadCorpus: valFraction must be in (0, 1), got ${valFraction}`);
  const full = fs.readFileSync(path.join(CORPUS_DIR, file), "utf8");
  const text = Number.isFinite(maxChars) ? full.slice(0, maxChars) : full;
  // The vocabulary comes from the whole file so that a cut corpus keeps the same token ids.
  const tokenizer = new CharTokenizer(full);
  const tokens = tokenizer.encode(text);
  const cut = Math.floor(tokens.length * (1 - valFraction));
  return { text, tokenizer, train: tokens.subarray(0, cut), val: tokens.subarray(cut) };
}
