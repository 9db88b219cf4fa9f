// Staged backward's order of work. On a CPU backend each stage's gradients are read and handed out
// before the next stage is differentiated. On a GPU backend (webgpu, webgl) a read waits for the
// device: each wait is a `readback stage i` span (category compute), and with DISTLAB_READ_BEHIND=1
// reads run one stage behind (stage i-1's backward is queued before stage i's read is awaited). The GPU backend here is
// TF.js's cpu backend and kernels registered under the name "webgpu" (what the code decides by), so the test
// sees the order of calls, not GPU timing; bench/gpu and test/gpu run the real one.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { createMlp } from "../../kernel/src/models/mlp";
import { datasetBatch, teacherClassification } from "../../kernel/src/data";
import { stagedBackward } from "../../kernel/src/techniques/staged-backward";
import type { StagedModel } from "../../kernel/src/techniques/types";

after(() => {
  for (const kernel of tf.getKernelsForBackend("webgpu")) tf.unregisterKernel(kernel.kernelName, "webgpu");
  tf.removeBackend("webgpu");
});

/** The stages' backward calls and the hand-outs, in order, and the spans `dist.span` was given. */
async function orderOfWork(backend: string): Promise<{ events: string[]; spans: { name: string; cat?: string }[]; grads: number[][] }> {
  await tf.setBackend(backend);
  const model = createMlp({ sizes: [8, 16, 16, 16, 4], seed: 1 });
  const data = teacherClassification({ n: 32, inputs: 8, outputs: 4, seed: 2 });
  const batch = datasetBatch(data, Array.from({ length: 16 }, (_, i) => i));
  const events: string[] = [];
  let forwardDone = false;
  // Every call of a stage's forward after the forward pass is that stage's backward (tf.grads runs it under the tape).
  const staged: StagedModel<typeof batch> = {
    ...model,
    stages: model.stages.map((stage, i) => ({
      ...stage,
      forward: (x: tf.Tensor, params: tf.Tensor[]) => {
        if (forwardDone) events.push(`backward ${i}`);
        else if (i === model.stages.length - 1) forwardDone = true;
        return stage.forward(x, params);
      },
    })),
  };
  const spans: { name: string; cat?: string }[] = [];
  const dist = { span: <T>(name: string, fn: () => T, options?: { cat?: string }) => (spans.push({ name, cat: options?.cat }), fn()) };
  const grads: number[][] = [];
  await stagedBackward(staged, batch, (stage, values) => {
    events.push(`ready ${stage}`);
    grads[stage] = values.map((v) => v.reduce((sum, x) => sum + x, 0));
  }, false, dist);
  tf.dispose([batch.x, batch.y]);
  model.params.forEach((p) => p.dispose());
  return { events, spans, grads };
}

test("CPU: gradients handed out before the next stage's backward; GPU: a readback span each, one stage behind with DISTLAB_READ_BEHIND=1", async () => {
  tf.registerBackend("webgpu", () => new MathBackendCPU());
  for (const kernel of tf.getKernelsForBackend("cpu")) tf.registerKernel({ ...kernel, backendName: "webgpu" });
  const inOrder = ["backward 3", "ready 3", "backward 2", "ready 2", "backward 1", "ready 1", "backward 0", "ready 0"];
  const readbacks = [3, 2, 1, 0].map((stage) => ({ name: `readback stage ${stage}`, cat: "compute" }));
  const cpu = await orderOfWork("cpu");
  assert.deepEqual(cpu.events, inOrder);
  assert.deepEqual(cpu.spans, [], "no readback spans on a CPU backend");

  const gpu = await orderOfWork("webgpu");
  assert.deepEqual(gpu.events, inOrder, "by default a GPU rank awaits each read before the next stage");
  assert.deepEqual(gpu.spans, readbacks);

  process.env.DISTLAB_READ_BEHIND = "1";
  try {
    const behind = await orderOfWork("webgpu");
    assert.deepEqual(behind.events, ["backward 3", "backward 2", "ready 3", "backward 1", "ready 2", "backward 0", "ready 1", "ready 0"]);
    assert.deepEqual(behind.spans, readbacks);
    // the same gradients either way (same seeds, same batch)
    behind.grads.forEach((sums, stage) => sums.forEach((sum, j) => assert.ok(Math.abs(sum - cpu.grads[stage]![j]!) < 1e-4, `stage ${stage} gradient ${j}: ${sum} vs ${cpu.grads[stage]![j]}`)));
  } finally {
    delete process.env.DISTLAB_READ_BEHIND;
    await tf.setBackend("cpu");
  }
});
