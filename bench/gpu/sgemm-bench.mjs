// Square f32 matMul on WebGPU with distlab's register-blocked kernel
// (kernel/src/compute/webgpu/register-gemm.ts) alone, no TF.js, one tile
// shape after another: the sweep that chose its default tile. Next to
// PyTorch's f32 product on the same card (matmul_torch_precisions.py, run
// beside it by the device command); TF.js's own matMul and distlab's kernel
// inside TF.js are webgpu-bench.ts MODE=matmul.
//
//   node bench/gpu/sgemm-bench.mjs [--sizes 2048,4096,8192] [--reps 7] [--tiles 128x128x16:8x8:d,128x64x16:8x4:p] [--cpu]
//
// A tile is BMxBNxBK:TMxTN[:flags] (register-gemm.ts, parseGemmTile). Prints
// JSON lines: per tile, the largest error against a float64 product computed
// here at 512^3 (inputs uniform in [-1, 1)); then per size and tile the median
// [min, max] TFLOP/s over --reps blocks of products (about 20 TFLOP a block,
// timed from submit to a 16-byte read of the result), after 3 warm-up products.
// Environment: SGEMM_PRODUCTS (products a block), SGEMM_PER_SUBMIT (products a command buffer,
// 4), SGEMM_TRACE=1 (progress on stderr).
import { createRequire } from "node:module";
// bundled by build.mjs (locally: node --import tsx bench/gpu/sgemm-bench.mjs --print)
import { DEFAULT_GEMM_TILES, gemmGroups, gemmShader, gemmUniform, parseGemmTiles } from "../../kernel/src/compute/webgpu/register-gemm.ts";
import { checkKernels, commandLine, compilePipeline, randomMatrix, readBack, storageBuffer, tflopsSummary } from "./matmul-harness.mjs";

// CommonJS resolution, so NODE_PATH (.gpu-run/node_modules on the GPU machine) finds Dawn.
const { create, globals } = createRequire(import.meta.url)("webgpu");

const { argv, option, sizes: SIZES, reps: REPS } = commandLine();

/** Products a command buffer holds at most (see the timing loop). */
const PER_SUBMIT = Number(process.env.SGEMM_PER_SUBMIT ?? 4);
// default: the default tiles (each alone), then earlier candidates of the sweep
const TILES = parseGemmTiles(option("tiles", `${DEFAULT_GEMM_TILES},128x128x16:8x8:pu,128x128x8:8x8:pu,128x128x16:8x8:d,128x64x16:8x4:p,64x128x16:4x8:p`));

async function main() {
  if (argv.includes("--print")) {
    console.log(gemmShader(TILES[0]));
    return;
  }
  const gpu = create([]);
  // Dawn's instance lives as long as this object: collected mid-run, later calls crashed the process
  // (the kernel keeps it on navigator.gpu, compute/webgpu.ts)
  globalThis.navigator ??= { gpu };
  Object.assign(globalThis, globals);
  // --cpu: a CPU Vulkan driver (Mesa's lavapipe) is a fallback adapter to Dawn: checks the kernels' results where no GPU is
  const adapter = await gpu.requestAdapter(argv.includes("--cpu") ? { forceFallbackAdapter: true } : { powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter");
  const info = adapter.info;
  console.log(JSON.stringify({ adapter: `${info.vendor} ${info.device} (${info.description})`, maxWorkgroupStorage: adapter.limits.maxComputeWorkgroupStorageSize, maxInvocations: adapter.limits.maxComputeInvocationsPerWorkgroup }));
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: adapter.limits.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    },
  });
  device.addEventListener?.("uncapturederror", (e) => console.log(JSON.stringify({ uncapturedError: e.error.message })));

  const pipelines = new Map();
  for (const tile of TILES) {
    const pipeline = await compilePipeline(device, gemmShader(tile), { tile: tile.name });
    if (!pipeline) continue;
    pipelines.set(tile.name, { tile, pipeline });
  }

  const storage = (data) => storageBuffer(device, data);
  /** An n x n x n product as the kernel's helpers take it. */
  const square = (n) => ({ batch: 1, m: n, n, k: n, bBatched: false, transposeA: false, transposeB: false });
  const setUp = (n, a, b) => {
    const bufA = storage(a), bufB = storage(b);
    const bufC = device.createBuffer({ size: n * n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    // one uniform a tile shape (its rows of tiles differ)
    const dims = new Map([...pipelines.values()].map(({ tile }) => {
      const buffer = device.createBuffer({ size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(buffer, 0, gemmUniform(square(n), tile));
      return [tile.name, buffer];
    }));
    return { bufA, bufB, bufC, dims, destroy: () => [bufA, bufB, bufC, ...dims.values()].forEach((x) => x.destroy()) };
  };
  const encodeProducts = (n, { tile, pipeline }, buffers, count) => {
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [buffers.bufA, buffers.bufB, buffers.bufC, buffers.dims.get(tile.name)].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const groups = gemmGroups(square(n), tile);
    const encoder = device.createCommandEncoder();
    for (let p = 0; p < count; p++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(...groups);
      pass.end();
    }
    return encoder.finish();
  };

  // Correctness at 512: against a float64 product.
  await checkKernels(device, pipelines, setUp, encodeProducts);

  // Waits for the queue: a 16-byte read of C completes after every product before it.
  const drain = (buffers) => readBack(device, buffers.bufC, 16);
  for (const n of SIZES) {
    if (process.env.SGEMM_TRACE) console.error(`set up ${n}`);
    const buffers = setUp(n, randomMatrix(n, 3), randomMatrix(n, 5));
    for (const [name, kernel] of pipelines) {
      if (n % kernel.tile.bm || n % kernel.tile.bn || n % kernel.tile.bk) continue;
      if (process.env.SGEMM_TRACE) console.error(`warm-up ${n} ${name}`);
      device.queue.submit([encodeProducts(n, kernel, buffers, 3)]);
      await drain(buffers);
      if (process.env.SGEMM_TRACE) console.error(`warmed ${n} ${name}`);
      const products = Number(process.env.SGEMM_PRODUCTS ?? Math.max(3, Math.min(200, Math.floor(2e13 / (2 * n ** 3)))));
      const tflops = [];
      for (let r = 0; r < REPS; r++) {
        // command buffers of at most PER_SUBMIT products each, all submitted before the one wait
        const blockCommands = [];
        for (let done = 0; done < products; done += PER_SUBMIT) blockCommands.push(encodeProducts(n, kernel, buffers, Math.min(PER_SUBMIT, products - done)));
        const start = performance.now();
        for (const commands of blockCommands) device.queue.submit([commands]);
        await drain(buffers);
        tflops.push((2 * n ** 3 * products) / ((performance.now() - start) / 1e3) / 1e12);
      }
      console.log(JSON.stringify({ who: "distlab sgemm", n, tile: name, ...tflopsSummary(tflops) }));
    }
    buffers.destroy();
  }
  device.destroy();
}

main().then(() => process.exit(0), (error) => {
  console.error(`sgemm-bench: ${error.stack ?? error}`);
  process.exit(1);
});
