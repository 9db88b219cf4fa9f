/**
 * A ring allReduce built from non-blocking point-to-point messages, for DDP's
 * overlap. The communicator's collectives run to completion on the calling
 * thread once started (they wait on shared memory with Atomics.wait), so a
 * rank that starts one cannot differentiate anything until it ends. Its
 * point-to-point isend/irecv, in contrast, are driven from the event loop,
 * and the emulated link paces them by the clock: while backward computes, the
 * link's time passes and the bytes go out in a burst at the next turn of the
 * loop. That is the overlap PyTorch gets from a separate communication stream.
 *
 * Ring over n ranks, chunk i = [floor(i L / n), floor((i + 1) L / n)):
 *   reduce-scatter, s = 0..n-2: send chunk (r - s) to r + 1, add chunk (r - s - 1) from r - 1
 *   all-gather,     s = 0..n-2: send chunk (r + 1 - s) to r + 1, copy chunk (r - s) from r - 1
 * Each rank sends 2 (n - 1) / n of the buffer, as the blocking ring does.
 * In the ring too, every rank adds the chunks in the same order, so all
 * ranks end with bit-identical results.
 */

/** The part of the communicator this needs (`dist.comm`). */
export interface PointToPoint {
  readonly rank: number;
  readonly size: number;
  isend(x: Float32Array, peer: number): Promise<void>;
  irecv<T extends Float32Array>(into: T, peer: number): Promise<T>;
}

/** Mean over ranks of `x`, in place; resolves with x. */
export async function ringAllReduceMeanAsync(x: Float32Array, comm: PointToPoint): Promise<Float32Array> {
  const n = comm.size;
  if (n === 1) return x;
  const r = comm.rank;
  if (n === 2) {
    // Two ranks: the ring's two half-buffer steps become one whole-buffer exchange. The same
    // bytes per rank (L floats), but one message instead of two, and each message costs a
    // scheduling round trip on top of its transfer.
    const incoming = new Float32Array(x.length);
    await Promise.all([comm.isend(x.slice(), 1 - r), comm.irecv(incoming, 1 - r)]);
    // The same order of addition on both ranks (rank 0's value first) keeps them bit-identical.
    for (let i = 0; i < x.length; i++) x[i] = (r === 0 ? x[i]! + incoming[i]! : incoming[i]! + x[i]!) / 2;
    return x;
  }
  const right = (r + 1) % n;
  const left = (r - 1 + n) % n;
  const bound = (i: number): number => Math.floor((((i % n) + n) % n) * x.length / n);
  const chunk = (i: number): [number, number] => {
    const k = ((i % n) + n) % n;
    return [bound(k), k === n - 1 ? x.length : bound(k + 1)];
  };
  for (let s = 0; s < n - 1; s++) {
    const [sendStart, sendEnd] = chunk(r - s);
    const [recvStart, recvEnd] = chunk(r - s - 1);
    const incoming = new Float32Array(recvEnd - recvStart);
    await Promise.all([comm.isend(x.slice(sendStart, sendEnd), right), comm.irecv(incoming, left)]);
    for (let i = 0; i < incoming.length; i++) x[recvStart + i]! += incoming[i]!;
  }
  for (let s = 0; s < n - 1; s++) {
    const [sendStart, sendEnd] = chunk(r + 1 - s);
    const [recvStart, recvEnd] = chunk(r - s);
    const incoming = new Float32Array(recvEnd - recvStart);
    await Promise.all([comm.isend(x.slice(sendStart, sendEnd), right), comm.irecv(incoming, left)]);
    x.set(incoming, recvStart);
  }
  for (let i = 0; i < x.length; i++) x[i]! /= n;
  return x;
}
