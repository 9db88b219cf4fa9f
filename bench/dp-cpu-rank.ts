/**
 * One rank of bench:dp-cpu, a worker thread: TF.js on wasm with distlab's
 * overrides, the MLP of compute-models.ts, and distlab's shm communicator.
 * Each step: forward + backward on this rank's batch of 256, one allReduce
 * (mean) of all gradients packed in one buffer (669,706 floats, 2.6 MiB),
 * then SGD. Rank 0's initial weights are broadcast first, as DDP does.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { chooseBackend } from "../kernel/src/compute/backend-choice";
import { attachShmCommunicator } from "../kernel/src/comm";
import { sgd } from "../kernel/src/compute/sgd";
import { mlpLoss, mlpParams } from "./compute-models";

interface Setup { init: unknown; rank: number; size: number; steps: number; warmup: number; batch: number }

async function main(setup: Setup): Promise<void> {
  const comm = attachShmCommunicator(setup.init as never, setup.rank);
  await chooseBackend(tf, "wasm");
  const params = mlpParams(tf);
  const sizes = params.map((p) => p.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  // gradients (or, at start, weights) of all parameters, in order, in the world's registered memory (as techniques/data-parallel.ts keeps it): the allReduce works in place
  const flat = comm.alloc(Float32Array, total);
  const pack = (tensors: tf.Tensor[]) => { let at = 0; for (const t of tensors) { flat.set(t.dataSync() as Float32Array, at); at += t.size; } };
  const unpack = () => { let at = 0; return params.map((p, i) => { const t = tf.tensor(flat.subarray(at, at + sizes[i]!), p.shape); at += sizes[i]!; return t; }); };

  pack(params);
  await comm.broadcast(flat, 0, { out: flat });
  unpack().forEach((t, i) => { params[i]!.assign(t); t.dispose(); });

  const x = tf.randomNormal([setup.batch, 784], 0, 1, "float32", 1 + setup.rank); // this rank's shard of the global batch
  const labels = tf.randomUniform([setup.batch], 0, 10, "int32", 100 + setup.rank); // class ids, as PyTorch's twin
  const optimizer = sgd(tf, 0.01);
  const step = async () => {
    const { grads } = tf.variableGrads(() => mlpLoss(tf, params, x, labels) as tf.Scalar, params);
    pack(params.map((p) => grads[p.name]!));
    tf.dispose(Object.values(grads));
    await comm.allReduce(flat, { op: "mean", out: flat });
    const averaged = unpack();
    optimizer.applyGradients(params.map((p, i) => ({ name: p.name, tensor: averaged[i]! })));
    tf.dispose(averaged);
  };
  for (let i = 0; i < setup.warmup; i++) await step();
  await comm.barrier();
  // milliseconds of each timed step on this rank (the gradient allReduce keeps the ranks in step)
  const stepMs: number[] = [];
  for (let i = 0; i < setup.steps; i++) {
    const started = performance.now();
    await step();
    stepMs.push(performance.now() - started);
  }
  // Identical weights on every rank after training is the check that the gradients really were averaged.
  const checksum = params.reduce((sum, p) => sum + (tf.tidy(() => tf.sum(tf.abs(p)).dataSync()[0]!)), 0);
  parentPort!.postMessage({ rank: setup.rank, stepMs, checksum, tensors: tf.memory().numTensors });
}

void main(workerData as Setup).catch((error) => parentPort!.postMessage({ error: String((error as Error).stack) }));
