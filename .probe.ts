import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { installWasmOverrides } from "./kernel/src/compute/wasm/overrides";
import { mlpStep, gptStep } from "./bench/compute-models";
(async () => {
  await tf.setBackend("wasm"); await tf.ready();
  if (!process.env.STOCK) installWasmOverrides(tf);
  for (const [name, make] of [["mlp", mlpStep], ["gpt", gptStep]] as const) {
    const s = (make as any)(tf);
    for (let i = 0; i < 2; i++) s.step();
    const n0 = tf.memory().numTensors;
    const t0 = performance.now(); let loss = 0; for (let i = 0; i < 5; i++) loss = s.step();
    console.log(name, ((performance.now() - t0) / 5).toFixed(1), "ms/step loss", loss.toFixed(3), "leak", tf.memory().numTensors - n0);
    if (process.env.PROF) {
      const p = await tf.profile(() => { s.step(); });
      const agg = new Map<string, number>();
      for (const k of p.kernels) agg.set(k.name, (agg.get(k.name) ?? 0) + (k.kernelTimeMs as number));
      console.log([...agg].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(" | "));
    }
    s.dispose();
  }
})();
