import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { installWasmOverrides } from "./kernel/src/compute/wasm/overrides";
import { gptStep } from "./bench/compute-models";
(async () => {
  await tf.setBackend("wasm"); await tf.ready();
  installWasmOverrides(tf);
  const s = gptStep(tf); s.step(); s.step();
  const p = await tf.profile(() => { s.step(); });
  const agg = new Map<string, [number, number]>();
  for (const k of p.kernels) if (k.name !== "BatchMatMul") { const key = k.name + " " + k.inputShapes.map(x => JSON.stringify(x)).join(" x "); const v = agg.get(key) ?? [0, 0]; v[0] += k.kernelTimeMs as number; v[1]++; agg.set(key, v); }
  for (const [k, v] of [...agg].sort((a, b) => b[1][0] - a[1][0]).slice(0, 25)) console.log(v[0].toFixed(1), v[1], k);
})();
