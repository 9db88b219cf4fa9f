/**
 * Seeded synthetic datasets with a known answer: a linear map plus noise
 * (regression) and a fixed random "teacher" MLP whose argmax is the label
 * (classification). Every rank can build the same dataset locally from the
 * seed, so no data has to cross the link.
 */
import { normalArray, seededRandom } from "./random";

export interface Dataset {
  /** [n, inputs] row-major */
  x: Float32Array;
  /** regression: [n, outputs] row-major; classification: [n] class ids */
  y: Float32Array | Int32Array;
  n: number;
  inputs: number;
  /** regression: output width; classification: number of classes */
  outputs: number;
  task: "regression" | "classification";
}

export interface SyntheticOptions {
  /** samples */
  n: number;
  inputs: number;
  /** regression: output width; classification: classes */
  outputs: number;
  seed?: number;
  /** regression only: std of the Gaussian noise added to y. Default 0.1 */
  noise?: number;
  /** classification only: hidden width of the teacher MLP. Default 32 */
  teacherHidden?: number;
}

function checkSizes(where: string, o: SyntheticOptions): void {
  for (const key of ["n", "inputs", "outputs"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`${where}: ${key} must be an integer >= 1, got ${o[key]}`);
  }
}

/** y = x W + noise, x ~ N(0, 1), W ~ N(0, 1/inputs). */
export function linearRegression(options: SyntheticOptions): Dataset {
  checkSizes("linearRegression", options);
  const { n, inputs, outputs, seed = 0, noise = 0.1 } = options;
  const random = seededRandom(seed);
  const weights = normalArray(random, inputs * outputs, 1 / Math.sqrt(inputs)); // [inputs, outputs]
  const x = normalArray(random, n * inputs);
  const noiseDraws = normalArray(random, n * outputs, noise);
  const y = new Float32Array(n * outputs);
  for (let s = 0; s < n; s++) {
    for (let o = 0; o < outputs; o++) {
      let sum = noiseDraws[s * outputs + o]!;
      for (let i = 0; i < inputs; i++) sum += x[s * inputs + i]! * weights[i * outputs + o]!;
      y[s * outputs + o] = sum;
    }
  }
  return { x, y, n, inputs, outputs, task: "regression" };
}

/** label = argmax(tanh(x W1) W2) for a fixed random teacher; x ~ N(0, 1). */
export function teacherClassification(options: SyntheticOptions): Dataset {
  checkSizes("teacherClassification", options);
  const { n, inputs, outputs, seed = 0, teacherHidden = 32 } = options;
  const random = seededRandom(seed);
  const w1 = normalArray(random, inputs * teacherHidden, 1 / Math.sqrt(inputs)); // [inputs, hidden]
  const w2 = normalArray(random, teacherHidden * outputs, 1 / Math.sqrt(teacherHidden)); // [hidden, classes]
  const x = normalArray(random, n * inputs);
  const y = new Int32Array(n);
  const hidden = new Float32Array(teacherHidden);
  for (let s = 0; s < n; s++) {
    for (let h = 0; h < teacherHidden; h++) {
      let sum = 0;
      for (let i = 0; i < inputs; i++) sum += x[s * inputs + i]! * w1[i * teacherHidden + h]!;
      hidden[h] = Math.tanh(sum);
    }
    let best = 0;
    let bestScore = -Infinity;
    for (let c = 0; c < outputs; c++) {
      let score = 0;
      for (let h = 0; h < teacherHidden; h++) score += hidden[h]! * w2[h * outputs + c]!;
      if (score > bestScore) [best, bestScore] = [c, score];
    }
    y[s] = best;
  }
  return { x, y, n, inputs, outputs, task: "classification" };
}

/** The rows `indices` of a dataset, as plain arrays: { x: [k, inputs], y: [k, outputs] or [k] }. */
export function selectRows(data: Dataset, indices: readonly number[]): { x: Float32Array; y: Float32Array | Int32Array } {
  const x = new Float32Array(indices.length * data.inputs);
  const yWidth = data.task === "regression" ? data.outputs : 1;
  const y = data.task === "regression" ? new Float32Array(indices.length * yWidth) : new Int32Array(indices.length);
  indices.forEach((row, k) => {
    if (!Number.isInteger(row) || row < 0 || row >= data.n) throw new RangeError(`selectRows: index ${row} is outside 0..${data.n - 1}`);
    x.set(data.x.subarray(row * data.inputs, (row + 1) * data.inputs), k * data.inputs);
    y.set(data.y.subarray(row * yWidth, (row + 1) * yWidth), k * yWidth);
  });
  return { x, y };
}
