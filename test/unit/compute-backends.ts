// Shared by the compute tests: every TensorFlow.js backend that loads in
// this process (with distlab's overrides where it has any), and a way to run
// the same computation on each and on the `cpu` reference backend.
import * as tf from "@tensorflow/tfjs";
import { chooseBackend } from "../../kernel/src/compute/backend-choice";
import type { TfBackendName } from "../../kernel/src/magics/distributed-spec";

export { tf };

let available: string[] | undefined;

/** Backends other than the cpu reference that initialise here (wasm at least on the build machine). */
export async function backendsUnderTest(): Promise<string[]> {
  if (available) return available;
  available = [];
  for (const name of ["wasm", "webgpu", "tensorflow"] as TfBackendName[]) {
    try {
      await chooseBackend(tf, name);
      available.push(name);
    } catch {
      // Not available on this machine (no GPU adapter, tfjs-node not installed).
    }
  }
  await tf.setBackend("cpu");
  return available;
}

/** Runs `compute` on `backend` and returns its results as flat arrays with shapes (tensors are freed). */
export async function runOn(backend: string, compute: () => tf.Tensor[]): Promise<{ shape: number[]; values: Float32Array }[]> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialise`);
  const before = tf.memory().numTensors;
  const outputs = tf.tidy(compute);
  const results = outputs.map((t) => ({ shape: t.shape, values: t.dataSync() as Float32Array }));
  tf.dispose(outputs);
  const leaked = tf.memory().numTensors - before;
  if (leaked !== 0) throw new Error(`${backend}: ${leaked} tensors left behind`);
  return results;
}

/** Largest |a - b| / (1 + |b|) over all elements; shapes must match. */
export function maxRelativeError(a: { shape: number[]; values: Float32Array }, b: { shape: number[]; values: Float32Array }): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`shape ${a.shape} differs from reference ${b.shape}`);
  let worst = 0;
  for (let i = 0; i < a.values.length; i++) worst = Math.max(worst, Math.abs(a.values[i]! - b.values[i]!) / (1 + Math.abs(b.values[i]!)));
  return worst;
}

/** Deterministic values in [-1, 1) (a linear congruential sequence), so each backend gets the same inputs. */
export function values(shape: number[], seed: number): tf.Tensor {
  const size = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 31 - 1;
  }
  return tf.tensor(data, shape);
}

/**
 * Three steps of a two-layer regression (weights [6, 5], bias [5], a second weight [5, 3]: 30, 5 and
 * 15 values, so a SIMD update's multiple-of-4 prefix and its JavaScript tail) with `optimizer`;
 * `beforeStep(i)` runs before step i. Returns the final parameters (everything disposed).
 */
export function trainRegression(optimizer: tf.Optimizer, beforeStep: (step: number) => void = () => {}): Float32Array[] {
  const params = tf.tidy(() => [tf.variable(values([6, 5], 1)), tf.variable(values([5], 2)), tf.variable(values([5, 3], 3))]);
  const x = values([8, 6], 4), y = values([8, 3], 5);
  for (let step = 0; step < 3; step++) {
    beforeStep(step);
    optimizer.minimize(() => tf.mean(tf.square(tf.sub(tf.matMul(tf.tanh(tf.add(tf.matMul(x, params[0]!), params[1]!)), params[2]!), y))) as tf.Scalar);
  }
  const out = params.map((p) => p.dataSync() as Float32Array);
  tf.dispose([...params, x, y]);
  optimizer.dispose();
  return out;
}