// Backend choice: named backends load or fail with the reason, automatic
// choice falls back quickly past webgpu where there is no GPU, and the GPU
// adapter checks read the device files they should.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AUTO_ORDER, chooseBackend } from "../../kernel/src/compute/backend-choice";
import { dawnOptions, describeAdapter, hasGpuDeviceNode } from "../../kernel/src/compute/webgpu";
import { loadTf } from "../../kernel/src/cluster/rank-side/tf-setup";
import { tf } from "./compute-backends";

const gpuHere = hasGpuDeviceNode();
const tfjsNodeHere = ["@tensorflow/tfjs-node", "@tensorflow/tfjs-node-gpu"].some((name) => {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
});

test("automatic choice tries webgpu, tensorflow, wasm, cpu in that order", () => {
  assert.deepEqual([...AUTO_ORDER], ["webgpu", "tensorflow", "wasm", "cpu"]);
});

test("automatic choice on a machine without a GPU or tfjs-node lands on wasm within a second, naming what it skipped", { skip: (gpuHere || tfjsNodeHere) && "a GPU or tfjs-node is present" }, async () => {
  const started = performance.now();
  const chosen = await chooseBackend(tf);
  const elapsed = performance.now() - started;
  assert.equal(chosen.backend, "wasm");
  assert.match(chosen.device, /^cpu:wasm/);
  assert.ok(elapsed < 1000, `fallback took ${elapsed.toFixed(0)} ms`);
  assert.equal(chosen.skipped.length, 2);
  assert.match(chosen.skipped[0]!, /^webgpu: no GPU device node/);
  assert.match(chosen.skipped[1]!, /^tensorflow: the npm package @tensorflow\/tfjs-node or @tensorflow\/tfjs-node-gpu is not installed/);
});

test("--tf-backend webgpu without a GPU fails at once with the reason", { skip: gpuHere && "a GPU is present" }, async () => {
  await assert.rejects(chooseBackend(tf, "webgpu"), /--tf-backend webgpu: no GPU device node/);
});

test("--tf-backend tensorflow without tfjs-node says which package to install", { skip: tfjsNodeHere && "tfjs-node is installed" }, async () => {
  await assert.rejects(chooseBackend(tf, "tensorflow"), /--tf-backend tensorflow: the npm package @tensorflow\/tfjs-node/);
});

test("a rank's loadTf reports backend and device (what %dist status prints)", async () => {
  const cpu = await loadTf("cpu");
  assert.deepEqual([cpu.backend, cpu.device], ["cpu", "cpu:cpu"]);
  const wasm = await loadTf("wasm");
  assert.equal(wasm.backend, "wasm");
  // the matrix products' library where the machine's BLAS serves them (compute/cpu-blas.ts)
  assert.match(wasm.device, /^cpu:wasm( simd)?(, matMul on (libopenblas\.so(\.0)?|libdnnl\.so\.[23]))?(, vector passes (avx512f|avx2|baseline))?$/);
});

test("GPU device nodes: NVIDIA cards, DRM render nodes and WSL count; control nodes alone do not", () => {
  assert.equal(hasGpuDeviceNode(["nvidia0", "nvidiactl"], []), true);
  assert.equal(hasGpuDeviceNode(["nvidiactl", "nvidia-uvm"], []), false);
  assert.equal(hasGpuDeviceNode(["null"], ["card0", "renderD128"]), true);
  assert.equal(hasGpuDeviceNode(["dxg"], []), true);
  assert.equal(hasGpuDeviceNode(["null", "zero"], ["card0"]), false);
});

test("DISTLAB_WEBGPU_ADAPTER selects a Dawn adapter by name; adapters describe themselves", () => {
  assert.deepEqual(dawnOptions({}), []);
  assert.deepEqual(dawnOptions({ DISTLAB_WEBGPU_ADAPTER: "NVIDIA H200" }), ["adapter=NVIDIA H200"]);
  assert.deepEqual(dawnOptions({ DISTLAB_WEBGPU_DAWN: " enable-dawn-features=skip_validation  backend=vulkan" }), ["enable-dawn-features=skip_validation", "backend=vulkan"]);
  // What Dawn reported for an H200 (bench/gpu run, 2026-11-26).
  assert.equal(describeAdapter({ info: { vendor: "nvidia", device: "nvidia-h200", description: "NVIDIA: 580.159.04 580.159.4.0" } }), "nvidia nvidia-h200 (NVIDIA: 580.159.04 580.159.4.0)");
  assert.equal(describeAdapter({ info: { vendor: "amd", description: "Radeon", adapterType: "discrete GPU", backendType: "vulkan" } }), "amd Radeon (discrete GPU, vulkan)");
});
