// Collective algorithms written once over the point-to-point Transport, so
// shm and tcp share them. Ranks here are group ranks; `env.world(g)` maps to
// the transport's world ranks. Blocks of a length-n array over `size` ranks
// are [floor(i*n/size), floor((i+1)*n/size)), so any length works.
import { allocate, blockStart, bytesOf, viewOf } from "./dtype";
import type { Reducer } from "./reduce-js";
import type { CallContext, RecvSpec, SendSpec, Transport } from "./transport";
import type { CommArray } from "./types";

export interface AlgorithmEnv {
  transport: Transport;
  call: CallContext;
  /** this rank in the group */
  me: number;
  /** group size */
  n: number;
  /** group rank -> world rank */
  world(groupRank: number): number;
  dtype: number;
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

export function exchange(env: AlgorithmEnv, sends: SendSpec[], recvs: RecvSpec[]): Promise<void> {
  return env.transport.exchange(env.call, sends, recvs);
}

export function send(env: AlgorithmEnv, to: number, x: CommArray): SendSpec {
  return { peer: env.world(to), payload: bytesOf(x) };
}

/** Receive into x (bytes copied as they arrive). */
export function recvInto(env: AlgorithmEnv, from: number, x: CommArray): RecvSpec {
  const target = bytesOf(x);
  return { peer: env.world(from), bytes: target.length, onData: (chunk, offset) => target.set(chunk, offset) };
}

/** Receive and reduce into x as the bytes arrive (no staging copy). */
export function recvReduce(env: AlgorithmEnv, from: number, x: CommArray, reduce: Reducer): RecvSpec {
  const size = x.BYTES_PER_ELEMENT;
  return {
    peer: env.world(from),
    bytes: x.byteLength,
    onData(chunk, offset) {
      const count = chunk.length / size;
      const first = offset / size;
      // a socket's Buffer may start anywhere in its pool; Buffer#slice would not copy, so use Uint8Array's
      const aligned = chunk.byteOffset % size === 0;
      const source = aligned ? chunk : Uint8Array.prototype.slice.call(chunk);
      reduce(x.subarray(first, first + count), viewOf(env.dtype, source.buffer, source.byteOffset, count));
    },
  };
}

function block<T extends CommArray>(x: T, i: number, n: number): T {
  return x.subarray(blockStart(i, x.length, n), blockStart(i + 1, x.length, n)) as T;
}

/** In place: afterwards block `me` of acc holds the reduction over all ranks. 2(n-1)/n... here (n-1)/n of the data per link. */
export async function ringReduceScatter(env: AlgorithmEnv, acc: CommArray, reduce: Reducer): Promise<void> {
  const { me, n } = env;
  const right = mod(me + 1, n);
  const left = mod(me - 1, n);
  for (let s = 0; s < n - 1; s++) {
    const sendBlock = block(acc, mod(me - 1 - s, n), n);
    const recvBlock = block(acc, mod(me - 2 - s, n), n);
    await exchange(env, [send(env, right, sendBlock)], [recvReduce(env, left, recvBlock, reduce)]);
  }
}

/** In place: block i of `out` comes from rank i; block `me` must already be filled. */
export async function ringAllGather(env: AlgorithmEnv, out: CommArray): Promise<void> {
  const { me, n } = env;
  const right = mod(me + 1, n);
  const left = mod(me - 1, n);
  for (let s = 0; s < n - 1; s++) {
    await exchange(env, [send(env, right, block(out, mod(me - s, n), n))], [recvInto(env, left, block(out, mod(me - s - 1, n), n))]);
  }
}

export async function ringAllReduce(env: AlgorithmEnv, acc: CommArray, reduce: Reducer): Promise<void> {
  await ringReduceScatter(env, acc, reduce);
  await ringAllGather(env, acc);
}

/**
 * log2(n) rounds, each exchanging the whole vector with rank me XOR 2^k;
 * ranks beyond the largest power of two first fold into a partner and get
 * the result back at the end. Every rank ends with bit-identical values
 * because each pairwise combine is commutative.
 */
export async function recursiveDoublingAllReduce(env: AlgorithmEnv, acc: CommArray, reduce: Reducer): Promise<void> {
  const { me, n } = env;
  let p2 = 1;
  while (p2 * 2 <= n) p2 *= 2;
  const scratch = allocate(acc, acc.length);
  if (me >= p2) {
    await exchange(env, [send(env, me - p2, acc)], []);
    await exchange(env, [], [recvInto(env, me - p2, acc)]);
    return;
  }
  if (me + p2 < n) {
    await exchange(env, [], [recvInto(env, me + p2, scratch)]);
    reduce(acc, scratch);
  }
  for (let mask = 1; mask < p2; mask <<= 1) {
    const partner = me ^ mask;
    await exchange(env, [send(env, partner, acc)], [recvInto(env, partner, scratch)]);
    reduce(acc, scratch);
  }
  if (me + p2 < n) await exchange(env, [send(env, me + p2, acc)], []);
}

/** Binomial tree from root: ceil(log2 n) rounds; for small messages. */
export async function treeBroadcast(env: AlgorithmEnv, x: CommArray, root: number): Promise<void> {
  const { me, n } = env;
  const v = mod(me - root, n);
  const real = (rel: number) => mod(rel + root, n);
  let mask = 1;
  while (mask < n) {
    if (v & mask) {
      await exchange(env, [], [recvInto(env, real(v - mask), x)]);
      break;
    }
    mask <<= 1;
  }
  const sends: SendSpec[] = [];
  for (mask >>= 1; mask > 0; mask >>= 1) if (v + mask < n) sends.push(send(env, real(v + mask), x));
  if (sends.length) await exchange(env, sends, []);
}

/** Root scatters blocks, then a ring all-gather: ~2 S per link instead of S log n; for large messages. */
export async function scatterAllGatherBroadcast(env: AlgorithmEnv, x: CommArray, root: number): Promise<void> {
  const { me, n } = env;
  if (me === root) {
    const sends: SendSpec[] = [];
    for (let r = 0; r < n; r++) if (r !== root) sends.push(send(env, r, block(x, r, n)));
    await exchange(env, sends, []);
  } else {
    await exchange(env, [], [recvInto(env, root, block(x, me, n))]);
  }
  await ringAllGather(env, x);
}

/** Binomial tree toward root; the result is meaningful on root only. */
export async function treeReduce(env: AlgorithmEnv, acc: CommArray, root: number, reduce: Reducer): Promise<void> {
  const { me, n } = env;
  const v = mod(me - root, n);
  const real = (rel: number) => mod(rel + root, n);
  const scratch = allocate(acc, acc.length);
  for (let mask = 1; mask < n; mask <<= 1) {
    if (v & mask) {
      await exchange(env, [send(env, real(v - mask), acc)], []);
      return;
    }
    if (v + mask < n) {
      await exchange(env, [], [recvInto(env, real(v + mask), scratch)]);
      reduce(acc, scratch);
    }
  }
}

/** Dissemination barrier: ceil(log2 n) rounds of empty messages. */
export async function disseminationBarrier(env: AlgorithmEnv): Promise<void> {
  const { me, n } = env;
  const empty = new Uint8Array(0);
  for (let k = 1; k < n; k <<= 1) {
    await exchange(
      env,
      [{ peer: env.world(mod(me + k, n)), payload: empty }],
      [{ peer: env.world(mod(me - k, n)), bytes: 0, onData: () => {} }],
    );
  }
}

export { block };
