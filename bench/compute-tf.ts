/**
 * TF.js side of bench:compute: times the MLP and tiny-GPT training steps of
 * compute-models.ts on one backend and prints one JSON line: the
 * milliseconds of each of --steps timed steps after --warmup untimed ones
 * ({"mlp_ms": [...], ...}). bench/compute.mjs runs it and summarises.
 *   --backend wasm|cpu|webgpu|tensorflow   --stock (wasm without distlab's overrides)
 *   --only mlp,gpt   --steps N   --warmup N
 */
import * as tf from "@tensorflow/tfjs";
import { chooseBackend } from "../kernel/src/compute/backend-choice";
import type { TfBackendName } from "../kernel/src/magics/distributed-spec";
import { gptStep, mlpStep, type TrainStep } from "./compute-models";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1]! : fallback; };

async function main(): Promise<void> {
  const backend = option("backend", "wasm") as TfBackendName;
  let device: string;
  if (args.includes("--stock")) {
    require("@tensorflow/tfjs-backend-wasm");
    await tf.setBackend("wasm");
    device = "cpu:wasm (stock kernels)";
  } else {
    device = (await chooseBackend(tf, backend)).device;
  }
  const steps = Number(option("steps", "10"));
  const warmup = Number(option("warmup", "3"));
  const out: Record<string, unknown> = { backend: tf.getBackend(), device };
  const makers: Record<string, (t: typeof tf) => TrainStep> = { mlp: mlpStep, gpt: gptStep };
  for (const name of option("only", "mlp,gpt").split(",")) {
    const model = makers[name]!(tf);
    for (let i = 0; i < warmup; i++) model.step();
    const tensorsBefore = tf.memory().numTensors;
    const times: number[] = [];
    let loss = NaN;
    for (let i = 0; i < steps; i++) {
      const started = performance.now();
      loss = model.step();
      times.push(performance.now() - started);
    }
    out[`${name}_ms`] = times;
    out[`${name}_loss`] = loss;
    // Tensors alive after the timed steps minus before: 0 unless a step leaks.
    out[`${name}_leaked_tensors`] = tf.memory().numTensors - tensorsBefore;
    model.dispose();
  }
  console.log(JSON.stringify(out));
}

main().catch((error) => { console.error(error); process.exit(1); });
