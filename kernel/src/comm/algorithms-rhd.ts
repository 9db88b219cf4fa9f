// Recursive halving-doubling ("rhd", Rabenseifner's allreduce): a
// reduce-scatter by recursive halving, then an all-gather by recursive
// doubling, over p = the largest power of two <= n ranks. log2(p) steps
// each way instead of the ring's n - 1, and the same (p-1)/p of the data per
// rank in each phase, so it suits the middle ground where the ring's 2(n-1)
// latencies dominate but the message is too big to send whole log2(n) times
// (recursive doubling). Ranks beyond p fold their vector into rank me - p
// first and get the result back at the end.
import { allocate, blockStart } from "./dtype";
import { exchange, recvInto, recvReduce, send, type AlgorithmEnv, type Combining } from "./algorithms";
import type { Reducer } from "./reduce-js";
import type { CommArray } from "./types";

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Elements [start of block lo, start of block hi) of x cut into p blocks. */
function blocks<T extends CommArray>(x: T, lo: number, hi: number, p: number): T {
  return x.subarray(blockStart(lo, x.length, p), blockStart(hi, x.length, p)) as T;
}

/**
 * In place over the first p ranks (p a power of two): afterwards block `me`
 * of acc (of p blocks) holds the reduction over those ranks.
 */
export async function recursiveHalvingReduceScatter(
  env: AlgorithmEnv, acc: CommArray, reduce: Reducer, p: number, landing?: Combining["landing"],
): Promise<void> {
  const { me } = env;
  let lo = 0;
  let hi = p;
  for (let mask = p >> 1; mask > 0; mask >>= 1) {
    const partner = me ^ mask;
    const mid = (lo + hi) >> 1;
    // ranks with this bit clear keep the lower half of the current range
    const [keepLo, keepHi, giveLo, giveHi] = me & mask ? [mid, hi, lo, mid] : [lo, mid, mid, hi];
    await exchange(env, [send(env, partner, blocks(acc, giveLo, giveHi, p))], [recvReduce(env, partner, blocks(acc, keepLo, keepHi, p), reduce, landing)]);
    lo = keepLo;
    hi = keepHi;
  }
}

/** In place over the first p ranks (p a power of two): block `me` of p must be filled; afterwards all are. */
export async function recursiveDoublingAllGather(env: AlgorithmEnv, out: CommArray, p: number): Promise<void> {
  const { me } = env;
  for (let mask = 1; mask < p; mask <<= 1) {
    const partner = me ^ mask;
    const mine = me & ~(mask - 1);
    const theirs = partner & ~(mask - 1);
    await exchange(env, [send(env, partner, blocks(out, mine, mine + mask, p))], [recvInto(env, partner, blocks(out, theirs, theirs + mask, p))]);
  }
}

export async function rhdAllReduce(env: AlgorithmEnv, acc: CommArray, reduce: Reducer, landing?: Combining["landing"]): Promise<void> {
  const { me, n } = env;
  let p = 1;
  while (p * 2 <= n) p *= 2;
  if (me >= p) {
    await exchange(env, [send(env, me - p, acc)], []);
    await exchange(env, [], [recvInto(env, me - p, acc)]);
    return;
  }
  if (me + p < n) {
    const scratch = allocate(acc, acc.length);
    await exchange(env, [], [recvInto(env, me + p, scratch)]);
    reduce(acc, scratch);
  }
  await recursiveHalvingReduceScatter(env, acc, reduce, p, landing);
  await recursiveDoublingAllGather(env, acc, p);
  if (me + p < n) await exchange(env, [send(env, me + p, acc)], []);
}
