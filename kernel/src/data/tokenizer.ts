/**
 * Character-level tokenizer, as in nanoGPT's shakespeare_char: the vocabulary
 * is the sorted set of characters of the training text, a token is the index
 * of its character.
 */
export class CharTokenizer {
  readonly chars: readonly string[];
  readonly #ids: Map<string, number>;

  constructor(text: string) {
    this.chars = [...new Set(text)].sort();
    if (this.chars.length === 0) throw new RangeError("CharTokenizer: the text is empty");
    this.#ids = new Map(this.chars.map((c, i) => [c, i]));
  }

  get vocabSize(): number {
    return this.chars.length;
  }

  encode(text: string): Int32Array {
    const out = new Int32Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const id = this.#ids.get(text[i]!);
      if (id === undefined) throw new RangeError(`CharTokenizer: character ${JSON.stringify(text[i])} at ${i} is not in the vocabulary`);
      out[i] = id;
    }
    return out;
  }

  decode(tokens: ArrayLike<number>): string {
    let text = "";
    for (let i = 0; i < tokens.length; i++) text += this.chars[tokens[i]!] ?? "?";
    return text;
  }
}
