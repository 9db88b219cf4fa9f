/**
 * The two training steps that bench:compute and bench:dp-cpu time, written
 * with plain TensorFlow.js ops so they run on any backend. Their PyTorch
 * twins are in compute_torch.py: same shapes, same initial scale, same
 * optimizer, so step times compare like for like.
 *
 *   MLP:      784-512-512-10, ReLU, softmax cross-entropy over class ids
 *             (distlab's fused kernel where the backend has it), SGD lr 0.01.
 *   tiny GPT: nanoGPT's shakespeare_char CPU config: 4 layers, 4 heads,
 *             128 channels, context 64, batch 12, vocabulary 65; pre-norm
 *             blocks, tanh-GELU MLP of 4x width, Adam lr 1e-3.
 */
import { adam } from "../kernel/src/compute/adam";
import { sgd } from "../kernel/src/compute/sgd";
import { causalAttention, causalMask as makeCausalMask, gelu, layerNorm, linear as fusedLinear, softmaxCrossEntropy } from "../kernel/src/compute/fused";

type Tf = typeof import("@tensorflow/tfjs");
type Tensor = import("@tensorflow/tfjs").Tensor;
type Variable = import("@tensorflow/tfjs").Variable;
type Scalar = import("@tensorflow/tfjs").Scalar;

export interface TrainStep {
  /** One forward + backward + optimizer update; returns the loss (reads it back, so the step has finished). */
  step(): number;
  /** The same, reading the loss back asynchronously (GPU backends cannot read synchronously). */
  stepAsync(): Promise<number>;
  /** The trainable parameters, in a fixed order (for gradient all-reduce in bench:dp-cpu). */
  variables: Variable[];
  dispose(): void;
}

/** step/stepAsync around one optimizer step that returns the loss tensor. */
function readers(run: () => Tensor): Pick<TrainStep, "step" | "stepAsync"> {
  return {
    step: () => { const loss = run(); const value = loss.dataSync()[0]!; loss.dispose(); return value; },
    stepAsync: async () => { const loss = run(); const value = (await loss.data())[0]!; loss.dispose(); return value; },
  };
}

function linearInit(tf: Tf, inputs: number, outputs: number, name: string): [Variable, Variable] {
  const bound = 1 / Math.sqrt(inputs);
  return [tf.variable(tf.randomUniform([inputs, outputs], -bound, bound), true, `${name}.w`), tf.variable(tf.zeros([outputs]), true, `${name}.b`)];
}

export function mlpParams(tf: Tf): Variable[] {
  return [...linearInit(tf, 784, 512, "fc1"), ...linearInit(tf, 512, 512, "fc2"), ...linearInit(tf, 512, 10, "fc3")];
}

/** loss(params) for one batch x [batch, 784], labels: class ids, int32 [batch]. */
export function mlpLoss(tf: Tf, params: Variable[], x: Tensor, labels: Tensor): Tensor {
  const [w1, b1, w2, b2, w3, b3] = params as [Variable, Variable, Variable, Variable, Variable, Variable];
  const h1 = fusedLinear(tf, x, w1, b1, "relu"); // [batch, 512]
  const h2 = fusedLinear(tf, h1, w2, b2, "relu"); // [batch, 512]
  const logits = fusedLinear(tf, h2, w3, b3); // [batch, 10]
  return softmaxCrossEntropy(tf, logits, labels, () => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 10), logits) as Scalar);
}

export function mlpStep(tf: Tf, batch = 256): TrainStep {
  const variables = mlpParams(tf);
  const x = tf.randomNormal([batch, 784]);
  const labels = tf.randomUniform([batch], 0, 10, "int32");
  // tf.train.sgd's update (same state and math); fused into one pass per variable on wasm
  const optimizer = sgd(tf, 0.01);
  const run = () => optimizer.minimize(() => mlpLoss(tf, variables, x, labels) as import("@tensorflow/tfjs").Scalar, true)!;
  return {
    variables,
    ...readers(run),
    dispose: () => { tf.dispose([...variables, x, labels]); optimizer.dispose(); },
  };
}

export const GPT = { layers: 4, heads: 4, channels: 128, context: 64, batch: 12, vocabulary: 65 } as const;

function gptParams(tf: Tf): Variable[] {
  const { layers, channels: c, context, vocabulary } = GPT;
  const params: Variable[] = [
    tf.variable(tf.randomNormal([vocabulary, c], 0, 0.02), true, "wte"),
    tf.variable(tf.randomNormal([context, c], 0, 0.02), true, "wpe"),
  ];
  const norm = (name: string) => [tf.variable(tf.ones([c]), true, `${name}.g`), tf.variable(tf.zeros([c]), true, `${name}.b`)];
  for (let l = 0; l < layers; l++) {
    params.push(...norm(`h${l}.ln1`), ...linearInit(tf, c, 3 * c, `h${l}.qkv`), ...linearInit(tf, c, c, `h${l}.proj`));
    params.push(...norm(`h${l}.ln2`), ...linearInit(tf, c, 4 * c, `h${l}.fc`), ...linearInit(tf, 4 * c, c, `h${l}.fcproj`));
  }
  params.push(...norm("lnf"), ...linearInit(tf, c, vocabulary, "head"));
  return params;
}

/** tokens, targets: int32 [batch * context]; returns the mean cross-entropy. */
export function gptLoss(tf: Tf, params: Variable[], tokens: Tensor, targets: Tensor, causalMask: Tensor): Tensor {
  const { layers, heads, channels: c, context: t, batch: b } = GPT;
  let i = 0;
  const next = () => params[i++]!;
  const wte = next(), wpe = next();
  // x [rows, in] w [in, out] + bias [out]: on webgpu the bias is added in the product's kernel (same sum).
  const linear = (x: Tensor, w: Tensor, bias: Tensor) => fusedLinear(tf, x, w, bias);
  // [b * t, c]: token embedding plus position embedding (broadcast over the batch)
  let x = tf.reshape(tf.add(tf.reshape(tf.gather(wte, tokens), [b, t, c]), wpe), [b * t, c]);
  for (let l = 0; l < layers; l++) {
    const [g1, n1, wqkv, bqkv, wp, bp, g2, n2, wf, bf, wfp, bfp] = Array.from({ length: 12 }, next);
    const qkv = linear(layerNorm(tf, x, g1!, n1!), wqkv!, bqkv!); // [b * t, 3c]
    // causal self-attention over `heads` heads of hs channels: [b * t, 3c] -> [b * t, c]
    const merged = causalAttention(tf, qkv, { time: t, heads }, causalMask);
    x = tf.add(x, linear(merged, wp!, bp!));
    const hidden = gelu(tf, linear(layerNorm(tf, x, g2!, n2!), wf!, bf!)); // [b * t, 4c]
    x = tf.add(x, linear(hidden, wfp!, bfp!));
  }
  const [gf, nf, wh, bh] = [next(), next(), next(), next()];
  const logits = linear(layerNorm(tf, x, gf, nf), wh, bh); // [b * t, vocabulary]
  // mean over the b * t positions; one fused kernel each way on webgpu, tf.losses' own elsewhere
  return softmaxCrossEntropy(tf, logits, targets, () => tf.losses.softmaxCrossEntropy(tf.oneHot(targets, GPT.vocabulary), logits) as Scalar);
}

export function gptStep(tf: Tf): TrainStep {
  const { context: t, batch: b, vocabulary } = GPT;
  const variables = gptParams(tf);
  const tokens = tf.randomUniform([b * t], 0, vocabulary, "int32");
  const targets = tf.randomUniform([b * t], 0, vocabulary, "int32");
  // [t, t]: 0 on and below the diagonal, -1e9 above (a position sees only its past).
  const causalMask = makeCausalMask(tf, t);
  // tf.train.adam's update (same state and math); fused into one pass per variable where the backend has it (webgpu, wasm).
  const optimizer = adam(tf, 1e-3);
  const run = () => optimizer.minimize(() => gptLoss(tf, variables, tokens, targets, causalMask) as import("@tensorflow/tfjs").Scalar, true)!;
  return {
    variables,
    ...readers(run),
    dispose: () => { tf.dispose([...variables, tokens, targets, causalMask]); optimizer.dispose(); },
  };
}
