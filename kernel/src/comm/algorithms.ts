// Collective algorithms written once over the point-to-point Transport, so
// shm and tcp share them. Ranks here are group ranks; `env.world(g)` maps to
// the transport's world ranks. Blocks of a length-n array over `size` ranks
// are [floor(i*n/size), floor((i+1)*n/size)), so any length works.
import { allocate, blockStart, bytesOf, viewOf } from "./dtype";
import type { Reducer } from "./reduce-js";
import type { Combiner } from "./reduce-wasm";
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

/**
 * How a receiving rank folds arriving pieces into its result: combine(dst,
 * a, piece) sets dst = op(a, piece). `landing`, when given, is memory a
 * socket may read each piece into (WebAssembly memory, where the SIMD
 * kernels reach it without a copy); every piece is consumed before the
 * next read.
 */
export interface Combining {
  combine: Combiner;
  landing?(maxBytes: number): Uint8Array;
}

/** Receive into x: the transport may read straight into x; otherwise bytes are copied as they arrive. */
export function recvInto(env: AlgorithmEnv, from: number, x: CommArray): RecvSpec {
  const target = bytesOf(x);
  return {
    peer: env.world(from),
    bytes: target.length,
    into: (offset, maxBytes) => target.subarray(offset, offset + maxBytes),
    onData(chunk, offset) {
      if (chunk.buffer !== target.buffer || chunk.byteOffset !== target.byteOffset + offset) target.set(chunk, offset);
    },
  };
}

/** A typed view of a received piece; a piece that does not start on an element boundary is copied first. */
function pieceView(env: AlgorithmEnv, chunk: Uint8Array, width: number): CommArray {
  // a socket's Buffer may start anywhere in its pool; Buffer#slice would not copy, so use Uint8Array's
  const source = chunk.byteOffset % width === 0 ? chunk : (Uint8Array.prototype.slice.call(chunk) as Uint8Array);
  return viewOf(env.dtype, source.buffer, source.byteOffset, chunk.length / width);
}

/** Receive and reduce into x as the bytes arrive (no staging copy); `landing` as in Combining. */
export function recvReduce(env: AlgorithmEnv, from: number, x: CommArray, reduce: Reducer, landing?: Combining["landing"]): RecvSpec {
  const width = x.BYTES_PER_ELEMENT;
  return {
    peer: env.world(from),
    bytes: x.byteLength,
    into: landing && ((_offset, maxBytes) => landing(maxBytes)),
    onData(chunk, offset) {
      const first = offset / width;
      reduce(x.subarray(first, first + chunk.length / width), pieceView(env, chunk, width));
    },
  };
}

/** Receive and combine: dst = op(a, received) as the bytes arrive; dst may be a. */
export function recvCombine(env: AlgorithmEnv, from: number, dst: CommArray, a: CommArray, combining: Combining): RecvSpec {
  const width = dst.BYTES_PER_ELEMENT;
  const landing = combining.landing;
  return {
    peer: env.world(from),
    bytes: dst.byteLength,
    into: landing && ((_offset, maxBytes) => landing(maxBytes)),
    onData(chunk, offset) {
      const first = offset / width;
      const count = chunk.length / width;
      combining.combine(dst.subarray(first, first + count), a.subarray(first, first + count), pieceView(env, chunk, width));
    },
  };
}

function block<T extends CommArray>(x: T, i: number, n: number): T {
  return x.subarray(blockStart(i, x.length, n), blockStart(i + 1, x.length, n)) as T;
}

/** Bytes of a pipelined ring chunk (see ringChunks). */
export const RING_CHUNK_BYTES = 4 * 1024 * 1024;
/** Bytes of a pipelined ring chunk over TCP/IP (see ringChunks). */
export const TCP_RING_CHUNK_BYTES = 1024 * 1024;

/**
 * How many chunks the ring allReduce cuts each block into. Chunks follow
 * each other through the ring one step apart (a pipeline), so a chunk's
 * all-gather travels while the next chunk is still being reduced instead
 * of every rank meeting at the boundary between the phases.
 * - Over TCP/IP (`overNetwork`: ranks on other hosts, or `transport: "tcp"`)
 *   the wire sets the pace: blocks are cut into 1 MiB chunks on any number
 *   of ranks, so the pipeline fills and drains in a small share of the call.
 * - Over shared memory and Unix sockets (ranks on one host) only 2 ranks gain
 *   (4 MiB chunks): on more ranks the extra frames and exchanges cost more
 *   CPU than the overlap gains, so blocks stay whole.
 * (Figures: docs/collectives.md, "Figures behind the code"; docs/benchmarks.md, hosts.)
 */
export function ringChunks(n: number, bytes: number, overNetwork = false): number {
  if (overNetwork) return Math.max(1, Math.ceil(bytes / n / TCP_RING_CHUNK_BYTES));
  return n === 2 ? Math.max(1, Math.ceil(bytes / n / RING_CHUNK_BYTES)) : 1;
}

/**
 * The ring, each block cut into `chunks`. `steps` = n - 1: reduce-scatter,
 * afterwards block `me` of `result` holds the reduction over all ranks of x;
 * 2(n - 1): then all-gather, every block of `result` holds it. x is read only and result
 * may be x (in place). Each rank's own contribution to a block comes from x
 * as the block passes, so `result` needs no copy of x first. Chunk c is at
 * step t - c in exchange t; within an exchange every rank lists its chunks
 * in the same order, so frames on each connection meet their receives in
 * order.
 */
async function pipelinedRing(
  env: AlgorithmEnv, x: CommArray, result: CommArray, combining: Combining, steps: number, chunks: number,
): Promise<void> {
  const { me, n } = env;
  if (n === 1) {
    if (result !== x) result.set(x as never); // no step writes result
    return;
  }
  const right = mod(me + 1, n);
  const left = mod(me - 1, n);
  const piece = (a: CommArray, b: number, c: number) => block(block(a, mod(b, n), n), c, chunks);
  for (let t = 0; t < chunks + steps - 1; t++) {
    const sends: SendSpec[] = [];
    const recvs: RecvSpec[] = [];
    for (let c = Math.max(0, t - steps + 1); c <= Math.min(chunks - 1, t); c++) {
      const step = t - c;
      if (step < n - 1) {
        // reduce-scatter: step 0 sends this rank's own block, later steps the block combined the step before
        sends.push(send(env, right, piece(step === 0 ? x : result, me - 1 - step, c)));
        recvs.push(recvCombine(env, left, piece(result, me - 2 - step, c), piece(x, me - 2 - step, c), combining));
      } else {
        const s = step - (n - 1); // all-gather
        sends.push(send(env, right, piece(result, me - s, c)));
        recvs.push(recvInto(env, left, piece(result, me - s - 1, c)));
      }
    }
    await exchange(env, sends, recvs);
  }
}

/**
 * Pairwise exchange: every rank sends block j of x to rank j, reduces the
 * n-1 pieces of its own block it receives, then sends that block to every
 * rank. The ring's volume (2(n-1)/n of the data leaves each rank, in as many
 * messages), but in 2 steps instead of 2(n-1), and no chunk waits on
 * another rank's reduction before its first send: over a network of 3 or 4
 * ranks it is the automatic choice up to 4 MiB (choose.ts). Blocks are cut
 * into `chunks` as in the ring; exchange t carries chunk t's reduce-scatter
 * and chunk t-1's all-gather. Rank me adds in a fixed order, x_me + x_(me+1) + ... +
 * x_(me-1) (mod n), so results do not depend on which peer's bytes arrive
 * first: the first peer's piece is combined as it streams in, later peers'
 * land in scratch memory (n-2 pieces, from `workspace(elements)`: memory
 * like x kept from call to call, so a call costs no fresh pages) and are
 * added once the exchange is done. Only rank j writes block j, so every
 * rank ends with the same bits.
 */
export async function pairwiseAllReduce(
  env: AlgorithmEnv, x: CommArray, out: CommArray, combining: Combining, chunks: number, workspace: (elements: number) => CommArray,
): Promise<void> {
  const { me, n } = env;
  if (n === 1) {
    if (out !== x) out.set(x as never);
    return;
  }
  const piece = (a: CommArray, b: number, c: number) => block(block(a, b, n), c, chunks);
  const own = (a: CommArray, c: number) => piece(a, me, c);
  const peer = (k: number) => mod(me + k, n);
  const largest = Math.ceil(block(x, me, n).length / chunks); // no chunk of the block is longer
  const memory = workspace((n - 2) * largest);
  const scratch = Array.from({ length: n - 2 }, (_, i) => memory.subarray(i * largest, (i + 1) * largest));
  for (let t = 0; t <= chunks; t++) {
    const sends: SendSpec[] = [];
    const recvs: RecvSpec[] = [];
    const reducing = t < chunks ? own(out, t) : undefined;
    if (reducing) {
      for (let k = 1; k < n; k++) sends.push(send(env, peer(k), piece(x, peer(k), t)));
      recvs.push(recvCombine(env, peer(1), reducing, own(x, t), combining));
      for (let k = 2; k < n; k++) recvs.push(recvInto(env, peer(k), scratch[k - 2].subarray(0, reducing.length)));
    }
    if (t > 0) {
      const c = t - 1;
      for (let k = 1; k < n; k++) {
        sends.push(send(env, peer(k), own(out, c)));
        recvs.push(recvInto(env, peer(k), piece(out, peer(k), c)));
      }
    }
    await exchange(env, sends, recvs);
    if (reducing) for (const landed of scratch) combining.combine(reducing, reducing, landed.subarray(0, reducing.length));
  }
}

/** Afterwards block `me` of `work` holds the reduction over all ranks of x; (n-1)/n of the data per link. */
export function ringReduceScatter(env: AlgorithmEnv, x: CommArray, work: CommArray, combining: Combining): Promise<void> {
  return pipelinedRing(env, x, work, combining, env.n - 1, 1);
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

/** out = the reduction of every rank's x; out may be x (in place). 2(n-1)/n of the data per link. */
export function ringAllReduce(env: AlgorithmEnv, x: CommArray, out: CommArray, combining: Combining, chunks = 1): Promise<void> {
  return pipelinedRing(env, x, out, combining, 2 * (env.n - 1), chunks);
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
