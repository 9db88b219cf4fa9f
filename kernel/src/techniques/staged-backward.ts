/**
 * Backward one stage at a time, last stage first, handing each stage's
 * parameter gradients out as soon as they exist: the "gradient ready" points
 * at which DDP launches a bucket's allReduce while earlier layers are still
 * being differentiated.
 *
 * TensorFlow.js cannot stop a tape half-way, so each stage is differentiated
 * on its own with tf.grads and an upstream gradient dy: the stage's forward
 * runs again under the tape (like activation checkpointing), trading ~1/3
 * more compute for ready points. Overlapped and back-to-back runs use this
 * same backward, so they compare like with like.
 *
 * On a GPU backend (webgpu, webgl) the gradients must be read back to the
 * host, and a read resolves only once the GPU has run everything queued
 * before it. Each wait is a `readback stage i` span on the timeline
 * (category compute: the thread waits for the device to finish the work
 * queued before the read, then for the copy, and from the host the two
 * cannot be told apart). With DISTLAB_READ_BEHIND=1 the reads run one stage
 * behind: stage i-1's backward is queued before stage i's read is awaited,
 * so the GPU is not left idle for a read's round trip. It is off by default:
 * on an H200 it did not make GPT-2 small's DDP step measurably faster (1612
 * and 1247 ms against 1467 and 1826 ms awaiting each read), and in
 * 02-ddp-overlap it let the exchange outlast backward (43.8% overlap in one
 * run of two). A CPU backend computes while it is called, so it always reads
 * at once: a stage's gradients are ready before the next stage starts.
 */
import * as tf from "@tensorflow/tfjs";
import { readTensors } from "./gradients";
import { withSpan } from "./span";
import type { GradientArray, StagedModel } from "./types";

/** Called with the stage's index and its parameters' gradients (Stage.params order). */
export type StageReady = (stage: number, grads: GradientArray[]) => void;

/** Backends whose kernels run after the call returns, on a device: reading a tensor waits for the device. */
export function onAsyncDevice(): boolean {
  const backend = tf.getBackend();
  return backend === "webgpu" || backend === "webgl";
}

/**
 * Forward, then backward stage by stage. Between stages it yields to the
 * event loop when `yieldBetween` is set, so collectives already started can
 * make progress. `dist` (optional) records the GPU readback spans. Returns the loss.
 */
export async function stagedBackward<B>(model: StagedModel<B>, batch: B, onReady: StageReady, yieldBetween = true, dist?: unknown): Promise<number> {
  const stages = model.stages;
  // activations[i] is stage i's input; activations[stages.length] is the model output.
  const activations: tf.Tensor[] = [model.input(batch)];
  for (const stage of stages) activations.push(tf.tidy(() => stage.forward(activations.at(-1)!, stage.params)));
  let lossTensor: tf.Tensor | undefined;
  let dy: tf.Tensor = tf.tidy(() => {
    const { value, grads } = tf.valueAndGrads((out: tf.Tensor) => model.head(out, batch))([activations[stages.length]!]);
    lossTensor = tf.keep(value);
    return grads[0]!;
  });
  // Read while backward runs on; awaited at the end (a GPU rank cannot read synchronously).
  const loss = lossTensor!.data().then((values) => values[0]!).finally(() => lossTensor!.dispose());
  const onDevice = onAsyncDevice();
  const readBehind = onDevice && process.env.DISTLAB_READ_BEHIND === "1";
  /** A stage whose gradients are queued and being read; handed out once read. */
  let reading: { stage: number; tensors: tf.Tensor[]; values: Promise<Float32Array[]> } | undefined;
  const handOut = async (read: NonNullable<typeof reading>): Promise<void> => {
    const values = onDevice
      ? await withSpan(dist, `readback stage ${read.stage}`, () => read.values, "compute")
      : await read.values;
    tf.dispose(read.tensors);
    onReady(read.stage, values);
    // A few turns of the event loop: each lets pending messages move what the link allows by now.
    if (yieldBetween) for (let turn = 0; turn < 3; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
  };
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i]!;
    const input = activations[i]!;
    const needInput = stage.differentiableInput && i > 0;
    const grads = tf.tidy(() => {
      const values = stage.params.map((p) => p as tf.Tensor);
      const f = needInput
        ? (x: tf.Tensor, ...ps: tf.Tensor[]) => stage.forward(x, ps)
        : (...ps: tf.Tensor[]) => stage.forward(input, ps);
      return tf.grads(f)(needInput ? [input, ...values] : values, dy);
    });
    dy.dispose();
    const paramGrads = needInput ? grads.slice(1) : grads;
    dy = needInput ? grads[0]! : tf.scalar(0);
    const read = { stage: i, tensors: paramGrads, values: readTensors(paramGrads) };
    if (!readBehind) {
      await handOut(read);
      continue;
    }
    // this stage's backward and its read are queued: now wait for the stage before's
    if (reading) await handOut(reading);
    reading = read;
  }
  if (reading) await handOut(reading);
  dy.dispose();
  tf.dispose(activations.slice(1));
  return await loss;
}
