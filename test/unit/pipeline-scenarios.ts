// What a rank of the pipeline test world (pipeline-worker.ts) can be asked to
// do: run a pipeline step on its real communicator, recording its passes with
// a real span recorder, and return plain numbers and spans the test checks
// against one rank's gradients and the schedules' formulas.
import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../../kernel/src/comm";
import { createLinearChain, createTinyGpt } from "../../kernel/src/models";
import { seededRandom, type TensorBatch } from "../../kernel/src/data";
import { localGradients, PipelineParallel, type PipelineOptions } from "../../kernel/src/techniques";
import type { RawSpan, SpanRecorder } from "../../kernel/src/trace";

interface Rank {
  comm: Communicator;
  recorder: SpanRecorder;
  spans: RawSpan[];
}
type Scenario = (rank: Rank, arg: any) => Promise<unknown>;

/** A batch of `rows` random inputs and targets for the linear chain, the same on every rank. */
function chainBatch(rows: number, width: number, seed: number): TensorBatch {
  const random = seededRandom(seed);
  const values = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);
  return { x: tf.tensor2d(values(rows * width), [rows, width]), y: tf.tensor2d(values(rows * width), [rows, width]) };
}

/** A batch of random token windows for the tiny GPT. */
function tokenBatch(rows: number, time: number, vocab: number, seed: number): TensorBatch {
  const random = seededRandom(seed);
  const ids = (n: number) => Int32Array.from({ length: n }, () => Math.floor(random() * vocab));
  return { x: tf.tensor2d(ids(rows * time), [rows, time], "int32"), y: tf.tensor2d(ids(rows * time), [rows, time], "int32") };
}

/** The dist a pipeline sees in a cell: the communicator and the recorder's span. */
const distOf = (rank: Rank) => ({ comm: rank.comm, span: rank.recorder.span.bind(rank.recorder) });

export const PIPELINE_SCENARIOS: Record<string, Scenario> = {
  /**
   * arg {model: "chain" | "gpt", options}: one pipeline step's gradients against the whole model's
   * on this rank alone. Returns the largest |difference| over this rank's parameters, the largest
   * |gradient| (the scale), how many parameters it owns, its loss and stash peaks.
   */
  async gradients(rank, arg: { model: "chain" | "gpt"; options: Partial<PipelineOptions>; rows: number }) {
    const model = arg.model === "chain" ? createLinearChain({ width: 16, layers: 8, seed: 5 }) : createTinyGpt({ vocabSize: 11, blockSize: 8, nEmbd: 16, nHead: 2, nLayer: 3, seed: 5 });
    const batch = arg.model === "chain" ? chainBatch(arg.rows, 16, 9) : tokenBatch(arg.rows, 8, 11, 9);
    const reference = await localGradients(model, batch);
    const pipe = new PipelineParallel(model, distOf(rank), arg.options);
    const result = await pipe.gradients(batch);
    let difference = 0;
    let scale = 0;
    for (const [index, g] of pipe.lastGradients) {
      const want = reference.grads[index]!;
      for (let i = 0; i < g.length; i++) {
        difference = Math.max(difference, Math.abs(g[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
    }
    tf.dispose([batch.x, batch.y]);
    return { difference, scale, owned: pipe.lastGradients.size, loss: result.loss, referenceLoss: reference.loss, peak: result.peakStashed, perChunk: result.peakStashedPerChunk, tensors: tf.memory().numTensors };
  },

  /**
   * arg {options, width, rows, steps}: a warm-up step, then `steps` pipeline steps of the linear
   * chain with device time; returns the recorded spans of the timed steps' passes (args.stage
   * set, args.step 0 .. steps-1), microseconds.
   */
  async timed(rank, arg: { options: Partial<PipelineOptions>; width: number; layers: number; rows: number; steps: number }) {
    const model = createLinearChain({ width: arg.width, layers: arg.layers, seed: 5 });
    const batch = chainBatch(arg.rows, arg.width, 9);
    // Warm-up (TensorFlow.js compiles its kernels on first use) without device time, then the timed steps.
    await new PipelineParallel(model, distOf(rank), { ...arg.options, deviceMs: { F: 0, B: 0, W: 0 } }).gradients(batch);
    const pipe = new PipelineParallel(model, distOf(rank), arg.options);
    let peak = 0;
    for (let s = 0; s < arg.steps; s++) {
      await rank.comm.barrier();
      peak = (await pipe.step(batch)).peakStashed;
    }
    rank.recorder.flush();
    const spans = rank.spans
      .filter((s) => typeof s.args?.stage === "number" && (s.args.deviceMs as number) > 0)
      .map((s) => ({ ts: s.start, dur: s.dur, args: { stage: s.args!.stage, pass: s.args!.pass, microbatch: s.args!.microbatch, step: s.args!.step } }));
    tf.dispose([batch.x, batch.y]);
    return { spans, peak };
  },
};
