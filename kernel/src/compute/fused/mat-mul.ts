/**
 * Matrix products whose backward passes are products of untransposed
 * operands too.
 *
 * TF.js's webgpu backend runs a product fast only when neither operand is
 * transposed: with transposeB its packed shader drops to scalar loads, and
 * distlab's larger tiles (../webgpu/batch-mat-mul.ts) take only the vec4
 * form without transposeA. TF.js's own gradient of c = a b is
 * da = dy b^T (transposeB) and db = a^T dy (transposeA), so every backward
 * product of a training step took a slow form. Here the gradient first
 * materialises the transposed operand (one tiled transpose pass, memory
 * speed) and multiplies untransposed:
 *
 *   a [..., m, k], b [..., k, n] (the same leading axes)  ->  c [..., m, n]
 *   da = dy t(b),  db = t(a) dy,  t = swap of the last two axes
 *
 * except where productTuning says otherwise (batched t(a) dy as TF.js's
 * transposeA product; linear's t(x) dy split over blocks of rows).
 *
 * GPT-2 small's step (bench/gpu/gpt2-bench.ts) spends most of its time in
 * these products; docs/benchmarks.md has the figures. Small products (the
 * tiny GPT's) keep TF.js's gradient: there the two extra transpose
 * dispatches would cost more than the slower shader.
 */
type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Tensor2D = import("@tensorflow/tfjs").Tensor2D;

/** The permutation that swaps the last two axes of a rank-`rank` tensor. */
function swapLast(rank: number): number[] {
  return [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
}

/** t(x): x with its last two axes swapped, as a new tensor. */
export function transposeLast(tf: Tf, x: Tensor): Tensor {
  return tf.transpose(x, swapLast(x.rank));
}

/** Elements of the left operand from which matMul and linear take the untransposed path on webgpu (TF.js's retuned-tile threshold, 1024 x 1024). */
export const UNTRANSPOSED_MIN_SIZE = 1 << 20;

/** Whether `a`'s products take the untransposed path: webgpu, and a large left operand. */
export function wantsUntransposed(tf: Pick<Tf, "getBackend">, a: Tensor): boolean {
  return tf.getBackend() === "webgpu" && a.size >= UNTRANSPOSED_MIN_SIZE;
}

/**
 * Tuning read at each backward pass (so a benchmark can compare them in one process):
 *   DISTLAB_WEBGPU_BATCHED_TRANSPOSE_A  "1": a batched (rank > 2) db = t(a) dy takes TF.js's transposeA
 *     product instead; TF.js transposes rank > 2 element by element, which is slow for attention's
 *     [batch, heads, T, T] weights. Default "1".
 *   DISTLAB_WEBGPU_SPLIT_K  linear's dw = t(x) dy as S products over rows / S rows each, summed
 *     (more workgroups for its small [in, out] output): S, dividing rows. Default 1.
 */
export function productTuning(env: NodeJS.ProcessEnv = process.env): { batchedTransposeA: boolean; splitK: number } {
  const splitK = Number(env.DISTLAB_WEBGPU_SPLIT_K ?? 1);
  if (!Number.isInteger(splitK) || splitK < 1) throw new RangeError(`DISTLAB_WEBGPU_SPLIT_K must be an integer >= 1, got ${env.DISTLAB_WEBGPU_SPLIT_K}`);
  return { batchedTransposeA: (env.DISTLAB_WEBGPU_BATCHED_TRANSPOSE_A ?? "1") !== "0", splitK };
}

/** t(a) b for a [..., k, m], b [..., k, n]. */
function leftTransposedProduct(tf: Tf, a: Tensor, b: Tensor): Tensor {
  if (a.rank > 2 && productTuning().batchedTransposeA) return tf.matMul(a, b, true, false);
  return tf.matMul(transposeLast(tf, a), b);
}

/** t(x) dy for x [rows, in], dy [rows, out] -> [in, out], over splitK blocks of rows where they divide evenly. */
function weightGradient(tf: Tf, x: Tensor, dy: Tensor): Tensor {
  const { splitK } = productTuning();
  const [rows, inputs] = x.shape as [number, number];
  if (splitK === 1 || rows % splitK !== 0) return tf.matMul(transposeLast(tf, x), dy);
  const blocks = transposeLast(tf, tf.reshape(x, [splitK, rows / splitK, inputs])); // [S, in, rows / S]
  return tf.sum(tf.matMul(blocks, tf.reshape(dy, [splitK, rows / splitK, dy.shape[1]!])), 0); // sum of [S, in, out]
}

const plainOps = new WeakMap<object, (a: Tensor, b: Tensor) => Tensor>();
const linearOps = new WeakMap<object, (x: Tensor, w: Tensor, bias: Tensor) => Tensor>();

/** a b (a [..., m, k], b [..., k, n]) on any backend, differentiated by products of untransposed operands. */
export function untransposedMatMul(tf: Tf, a: Tensor, b: Tensor): Tensor {
  let op = plainOps.get(tf);
  if (!op) {
    op = tf.customGrad((x, y, save) => {
      (save as (t: Tensor[]) => void)([x as Tensor, y as Tensor]);
      return {
        value: tf.matMul(x as Tensor, y as Tensor),
        gradFunc: (dy: Tensor, [sa, sb]: Tensor[]) => [tf.matMul(dy, transposeLast(tf, sb!)), leftTransposedProduct(tf, sa!, dy)],
      };
    }) as unknown as (a: Tensor, b: Tensor) => Tensor;
    plainOps.set(tf, op);
  }
  return op(a, b);
}

/**
 * x w + bias (x [rows, in], w [in, out], bias [out]) with the bias added in
 * the product's kernel (tf.fused.matMul) and the untransposed backward:
 * dx = dy t(w), dw = t(x) dy, dbias = sum of dy over rows.
 */
export function untransposedLinear(tf: Tf, x: Tensor, w: Tensor, bias: Tensor): Tensor {
  let op = linearOps.get(tf);
  if (!op) {
    op = tf.customGrad((input, weight, b, save) => {
      (save as (t: Tensor[]) => void)([input as Tensor, weight as Tensor]);
      return {
        value: tf.fused.matMul({ a: input as Tensor2D, b: weight as Tensor2D, bias: b as Tensor }),
        gradFunc: (dy: Tensor, [sx, sw]: Tensor[]) => [tf.matMul(dy, transposeLast(tf, sw!)), weightGradient(tf, sx!, dy), tf.sum(dy, 0)],
      };
    }) as unknown as (x: Tensor, w: Tensor, bias: Tensor) => Tensor;
    linearOps.set(tf, op);
  }
  return op(x, w, bias);
}

/**
 * a b, or a t(b) with `transposeB`: where wantsUntransposed, through
 * untransposedMatMul (b transposed once up front when asked), elsewhere
 * tf.matMul as it is.
 */
export function matMul(tf: Tf, a: Tensor, b: Tensor, transposeB = false): Tensor {
  if (!wantsUntransposed(tf, a)) return tf.matMul(a, b, false, transposeB);
  return untransposedMatMul(tf, a, transposeB ? transposeLast(tf, b) : b);
}
