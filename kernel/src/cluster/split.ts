/**
 * How `%dist scatter` and `dist.shard` cut a sequence across ranks: an even
 * split in rank order, the first (length % size) ranks taking one extra
 * element. 10 over 4 ranks: [3, 3, 2, 2].
 */
export interface Block {
  /** First index, inclusive. */
  start: number;
  /** Last index, exclusive. */
  end: number;
}

export function splitEvenly(length: number, size: number): Block[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`splitEvenly: size must be a positive integer, got ${size}`);
  const base = Math.floor(length / size);
  const extra = length % size;
  const blocks: Block[] = [];
  let start = 0;
  for (let rank = 0; rank < size; rank += 1) {
    const end = start + base + (rank < extra ? 1 : 0);
    blocks.push({ start, end });
    start = end;
  }
  return blocks;
}
