// Square f32 matMul on WebGPU subgroup matrices (Dawn's
// `chromium-experimental-subgroup-matrix`, the tensor cores where the driver
// maps them) against PyTorch on the same card (matmul_torch_precisions.py,
// run beside it by the device command). No TF.js: this measures the kernel
// alone, before it is worth a place in the webgpu backend.
//
//   node bench/gpu/subgroup-matrix-bench.mjs [--sizes 2048,4096,8192] [--reps 7] [--tiles 4x4,8x4,8x8]
//
// Prints JSON lines: the adapter's subgroup-matrix configurations; per tile
// shape, the largest error against a float64 product computed here at
// 512 x 512 x 512 (inputs uniform in [-1, 1)); then per size and tile the
// median [min, max] TFLOP/s over --reps blocks of products (about 20 TFLOP a
// block, timed from submit to onSubmittedWorkDone), after 3 warm-up products.
//
// On the H200 (driver 580.159, npm webgpu 0.6.2 with allow_unsafe_apis) the
// adapter lists four configurations, all integer (u8 -> u32 and i8 -> i32,
// 16x16x32 and 16x8x32) and no shader-f16, so Dawn refuses the f32 pipeline
// ("Unknown configuration ... f32"): this prints the configurations and that
// refusal, and times nothing there (docs/gpus.md).
//
// Kernel: one subgroup (32 invocations) a workgroup, owning a tile of TM x TN
// blocks of 8 x 8 outputs; for each 8-deep slice of k it loads TM left and TN
// right 8 x 8 matrices straight from storage and runs TM * TN
// multiply-accumulates. Sizes must be multiples of the tile.
import { createRequire } from "node:module";
import { checkKernels, commandLine, compilePipeline, randomMatrix, storageBuffer, tflopsSummary } from "./matmul-harness.mjs";

// CommonJS resolution, so NODE_PATH (.gpu-run/node_modules on the GPU machine) finds Dawn.
const { create, globals } = createRequire(import.meta.url)("webgpu");

const { option, sizes: SIZES, reps: REPS } = commandLine();
const TILES = option("tiles", "4x4,8x4,4x8,8x8").split(",").map((t) => t.split("x").map(Number));
const FEATURE = "chromium-experimental-subgroup-matrix";

function kernelSource(tm, tn) {
  const out = [
    "enable chromium_experimental_subgroup_matrix;",
    "struct Dims { m : u32, n : u32, k : u32 }",
    "@group(0) @binding(0) var<storage, read> a : array<f32>;",
    "@group(0) @binding(1) var<storage, read> b : array<f32>;",
    "@group(0) @binding(2) var<storage, read_write> c : array<f32>;",
    "@group(0) @binding(3) var<uniform> dims : Dims;",
    "@compute @workgroup_size(32)",
    "fn main(@builtin(workgroup_id) wg : vec3u) {",
    `  let row0 = wg.y * ${tm * 8}u;`,
    `  let col0 = wg.x * ${tn * 8}u;`,
  ];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) out.push(`  var acc_${i}_${j} = subgroup_matrix_result<f32, 8, 8>();`);
  out.push("  for (var k = 0u; k < dims.k; k += 8u) {");
  for (let i = 0; i < tm; i++) out.push(`    let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f32, 8, 8>>(&a, (row0 + ${i * 8}u) * dims.k + k, false, dims.k);`);
  for (let j = 0; j < tn; j++) out.push(`    let r${j} = subgroupMatrixLoad<subgroup_matrix_right<f32, 8, 8>>(&b, k * dims.n + col0 + ${j * 8}u, false, dims.n);`);
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) out.push(`    acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc_${i}_${j});`);
  out.push("  }");
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) out.push(`  subgroupMatrixStore(&c, (row0 + ${i * 8}u) * dims.n + col0 + ${j * 8}u, acc_${i}_${j}, false, dims.n);`);
  out.push("}");
  return out.join("\n");
}

async function main() {
  const gpu = create(["enable-dawn-features=allow_unsafe_apis"]);
  // Dawn's instance lives as long as this object: collected mid-run, later calls crashed the process
  globalThis.navigator ??= { gpu };
  Object.assign(globalThis, globals);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter");
  const info = adapter.info;
  // Dawn's config objects keep their fields in prototype getters, which JSON.stringify skips.
  const configs = [...(info.subgroupMatrixConfigs ?? [])].map((c) => ({ M: c.M, N: c.N, K: c.K, componentType: c.componentType, resultComponentType: c.resultComponentType }));
  console.log(JSON.stringify({ adapter: `${info.vendor} ${info.device} (${info.description})`, subgroupMatrix: adapter.features.has(FEATURE),
    features: [...adapter.features].sort(), configs, subgroupSize: [info.subgroupMinSize, info.subgroupMaxSize] }));
  if (!adapter.features.has(FEATURE)) throw new Error(`the adapter lacks ${FEATURE}`);
  const device = await adapter.requestDevice({
    requiredFeatures: [FEATURE],
    requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
  });
  device.addEventListener?.("uncapturederror", (e) => console.log(JSON.stringify({ uncapturedError: e.error.message })));

  const pipelines = new Map();
  for (const [tm, tn] of TILES) {
    const pipeline = await compilePipeline(device, kernelSource(tm, tn), { tile: `${tm}x${tn}` });
    if (!pipeline) continue;
    pipelines.set(`${tm}x${tn}`, { tm, tn, pipeline });
  }

  const storage = (data) => storageBuffer(device, data);
  const setUp = (n, a, b) => {
    const bufA = storage(a), bufB = storage(b);
    const bufC = device.createBuffer({ size: n * n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const dims = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(dims, 0, new Uint32Array([n, n, n, 0]));
    return { bufA, bufB, bufC, dims, destroy: () => [bufA, bufB, bufC, dims].forEach((x) => x.destroy()) };
  };
  const encodeProducts = (n, { tm, tn, pipeline }, buffers, count) => {
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: ["bufA", "bufB", "bufC", "dims"].map((k, binding) => ({ binding, resource: { buffer: buffers[k] } })) });
    const encoder = device.createCommandEncoder();
    for (let p = 0; p < count; p++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(n / (tn * 8), n / (tm * 8));
      pass.end();
    }
    return encoder.finish();
  };

  // Correctness at 512: against a float64 product.
  await checkKernels(device, pipelines, setUp, encodeProducts);

  for (const n of SIZES) {
    const buffers = setUp(n, randomMatrix(n, 3), randomMatrix(n, 5));
    for (const [name, kernel] of pipelines) {
      if (n % (kernel.tm * 8) || n % (kernel.tn * 8)) continue;
      device.queue.submit([encodeProducts(n, kernel, buffers, 3)]);
      await device.queue.onSubmittedWorkDone();
      const products = Math.max(3, Math.min(200, Math.floor(2e13 / (2 * n ** 3))));
      const tflops = [];
      for (let r = 0; r < REPS; r++) {
        const blockCommands = encodeProducts(n, kernel, buffers, products); // a command buffer is submitted once
        const start = performance.now();
        device.queue.submit([blockCommands]);
        await device.queue.onSubmittedWorkDone();
        tflops.push((2 * n ** 3 * products) / ((performance.now() - start) / 1e3) / 1e12);
      }
      console.log(JSON.stringify({ who: "distlab subgroup-matrix", n, tile: name, ...tflopsSummary(tflops) }));
    }
    buffers.destroy();
  }
  device.destroy();
}

main().then(() => process.exit(0), (error) => {
  console.error(`subgroup-matrix-bench: ${error.stack ?? error}`);
  process.exit(1);
});
