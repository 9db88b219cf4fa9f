/**
 * The communication points of tensor and sequence parallelism, each a
 * conjugate pair: what the forward pass does at that point, and what the
 * backward pass does at the same point. Activations cross as float32
 * tensors laid out [seq, batch, hidden], so a sequence block of the flat
 * array is rank r's contiguous slice of positions.
 *
 * Tensor parallelism (Shoeybi et al. 2019, Megatron-LM section 3):
 *   f  before a column-parallel layer: identity forward, allReduce(sum) backward;
 *   g  after a row-parallel layer:     allReduce(sum) forward, identity backward.
 * Sequence parallelism (Korthikanti et al. 2022, section 4.2.2) replaces them by
 *   f̄  all-gather along the sequence forward, reduce-scatter backward;
 *   ḡ  reduce-scatter along the sequence forward, all-gather backward,
 * and since a ring allReduce is a reduce-scatter followed by an all-gather,
 * both move the same bytes.
 *
 * Every collective asks for the ring algorithm, so the bytes each rank sends
 * follow one published formula on every kind of world (docs/collectives.md):
 * allReduce w(2L - b_r - b_r+1), reduceScatter w(L - b_r), allGather (n-1) m w.
 */
import * as tf from "@tensorflow/tfjs";

/** The collectives tensor parallelism needs; `dist` of a `%%distributed` cell (or a group of it) satisfies it. */
export interface TensorParallelCollectives {
  readonly rank: number;
  readonly size: number;
  allReduce(x: Float32Array, options?: { op?: "sum"; algorithm?: "ring" }): Promise<Float32Array>;
  reduceScatter(x: Float32Array, options?: { op?: "sum"; algorithm?: "ring" }): Promise<Float32Array>;
  allGather(x: Float32Array, options?: { algorithm?: "ring" }): Promise<Float32Array>;
}

const RING = { algorithm: "ring" } as const;

/** Sum over the ranks of x, same shape; x is left alone. */
export async function allReduceSum(comm: TensorParallelCollectives, x: tf.Tensor): Promise<tf.Tensor> {
  const summed = await comm.allReduce(await floats(x), { op: "sum", ...RING });
  return tf.tensor(summed, x.shape);
}

/** x [seq, ...rest] summed over the ranks, rank r keeps positions [r seq/n, (r+1) seq/n): [seq/n, ...rest]. */
export async function reduceScatterSequence(comm: TensorParallelCollectives, x: tf.Tensor): Promise<tf.Tensor> {
  const [seq, ...rest] = x.shape;
  const block = await comm.reduceScatter(await floats(x), { op: "sum", ...RING });
  return tf.tensor(block, [seq! / comm.size, ...rest]);
}

/** Every rank's x [seq/n, ...rest] in rank order: [seq, ...rest]. */
export async function allGatherSequence(comm: TensorParallelCollectives, x: tf.Tensor): Promise<tf.Tensor> {
  const [part, ...rest] = x.shape;
  const whole = await comm.allGather(await floats(x), RING);
  return tf.tensor(whole, [part! * comm.size, ...rest]);
}

/**
 * One communication point of a layer: `forward` on the activation, `backward`
 * on its gradient. The tensor returned is new; the argument is not disposed.
 */
export interface Region {
  readonly name: string;
  forward(x: tf.Tensor): Promise<tf.Tensor>;
  backward(dy: tf.Tensor): Promise<tf.Tensor>;
}

/** Megatron's f (before a column-parallel layer) and g (after a row-parallel layer). */
export function tensorParallelRegions(comm: TensorParallelCollectives): { f: Region; g: Region } {
  return {
    f: { name: "f", forward: async (x) => tf.clone(x), backward: (dy) => allReduceSum(comm, dy) },
    g: { name: "g", forward: (x) => allReduceSum(comm, x), backward: async (dy) => tf.clone(dy) },
  };
}

/** Sequence parallelism's f̄ (gather the sequence for a column-parallel layer) and ḡ (scatter it after a row-parallel one). */
export function sequenceParallelRegions(comm: TensorParallelCollectives): { f: Region; g: Region } {
  return {
    f: { name: "f-sp", forward: (x) => allGatherSequence(comm, x), backward: (dy) => reduceScatterSequence(comm, dy) },
    g: { name: "g-sp", forward: (x) => reduceScatterSequence(comm, x), backward: (dy) => allGatherSequence(comm, dy) },
  };
}

async function floats(x: tf.Tensor): Promise<Float32Array> {
  const data = await x.data();
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}
