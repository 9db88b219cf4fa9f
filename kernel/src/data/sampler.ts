/**
 * Which samples each rank reads in an epoch: PyTorch's DistributedSampler.
 *
 * The n indices are shuffled with (seed + epoch), so every rank draws the same
 * permutation without communicating and each epoch sees a new order. Then
 * either the list is padded by repeating its head until it divides by size
 * (every rank gets ceil(n / size) indices, a few samples twice), or, with
 * dropLast, cut to floor(n / size) * size. Rank r takes positions r, r + size,
 * r + 2 size, ... so the shards are disjoint apart from the padding.
 */
import { seededRandom, shuffleInPlace } from "./random";

export interface ShardOptions {
  /** Mixed into the shuffle seed so each epoch has its own order. Default 0. */
  epoch?: number;
  /** Same on every rank. Default 0. */
  seed?: number;
  /** Shuffle before sharding. Default true. */
  shuffle?: boolean;
  /** Drop the tail that does not divide by size instead of padding. Default false. */
  dropLast?: boolean;
}

export function shardIndices(n: number, rank: number, size: number, options: ShardOptions = {}): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`shardIndices: n must be an integer >= 0, got ${n}`);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`shardIndices: size must be an integer >= 1, got ${size}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) {
    throw new RangeError(`shardIndices: rank must be an integer in 0..${size - 1}, got ${rank}`);
  }
  const { epoch = 0, seed = 0, shuffle = true, dropLast = false } = options;
  if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`shardIndices: epoch must be an integer >= 0, got ${epoch}`);
  const order = Array.from({ length: n }, (_, i) => i);
  if (shuffle) shuffleInPlace(order, seededRandom(seed * 1_000_003 + epoch));
  let total: number;
  if (dropLast) {
    total = Math.floor(n / size) * size;
  } else {
    total = Math.ceil(n / size) * size;
    // Repeat the head as often as needed (n may be smaller than size).
    for (let i = 0; order.length < total && n > 0; i++) order.push(order[i % n]!);
  }
  const mine: number[] = [];
  for (let position = rank; position < total; position += size) mine.push(order[position]!);
  return mine;
}
