// What the standalone WebGPU matMul benches share (sgemm-bench.mjs,
// subgroup-matrix-bench.mjs): seeded inputs, a float64 reference product,
// storage buffers, reading a result back, and the median [min, max] line.
// Plain WebGPU calls only; each bench brings its kernels and dispatches.

/** Deterministic n x n inputs in [-1, 1): a xorshift stream. */
export function randomMatrix(n, seed) {
  const x = new Float32Array(n * n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < x.length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    x[i] = s / 2 ** 31 - 1;
  }
  return x;
}

/** The n x n product a b in float64, and its largest |value| (errors are reported relative to it). */
export function float64Product(a, b, n) {
  const ref = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const aik = a[i * n + k];
    for (let j = 0; j < n; j++) ref[i * n + j] += aik * b[k * n + j];
  }
  return { ref, scale: ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0) };
}

/** The largest |c - ref|, absolute and relative to the reference's largest output. */
export function errorAgainst(c, { ref, scale }) {
  let maxAbs = 0;
  for (let i = 0; i < c.length; i++) maxAbs = Math.max(maxAbs, Math.abs(c[i] - ref[i]));
  return { maxAbsError: maxAbs, relativeToMaxOutput: maxAbs / scale };
}

/** A storage buffer holding `data` (a kernel's input, or its output when copied from). */
export function storageBuffer(device, data) {
  const buffer = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** The first `bytes` of `buffer` as float32, after the work queued before this call. */
export async function readBack(device, buffer, bytes) {
  const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, read, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  return values;
}

/** median [min, max] of TFLOP/s figures, two decimals. */
export function tflopsSummary(figures) {
  const sorted = [...figures].sort((x, y) => x - y);
  return { tflops: +sorted[sorted.length >> 1].toFixed(2), min: +sorted[0].toFixed(2), max: +sorted.at(-1).toFixed(2) };
}

/** A compute pipeline of `code` (entry point main), or undefined after printing its compile or validation errors under `label`. */
export async function compilePipeline(device, code, label) {
  const module = device.createShaderModule({ code });
  const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
  if (messages.length > 0) {
    console.log(JSON.stringify({ ...label, compileErrors: messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`) }));
    return undefined;
  }
  device.pushErrorScope("validation");
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const error = await device.popErrorScope();
  if (error) {
    console.log(JSON.stringify({ ...label, pipelineError: error.message }));
    return undefined;
  }
  return pipeline;
}

/** The benches' command line: `option(name, fallback)`, and --sizes (default 2048,4096,8192) and --reps (default 7, at least 5). */
export function commandLine(argv = process.argv.slice(2)) {
  const option = (name, fallback) => {
    const at = argv.indexOf(`--${name}`);
    return at < 0 ? fallback : argv[at + 1];
  };
  const reps = Number(option("reps", "7"));
  if (!(reps >= 5)) throw new RangeError(`--reps must be at least 5, got ${option("reps")}`);
  return { argv, option, sizes: option("sizes", "2048,4096,8192").split(",").map(Number), reps };
}

/**
 * Prints each kernel's error at 512^3 against a float64 product: `setUp(n, a, b)` makes the buffers
 * (bufC: the output; destroy()), `encodeProducts(n, kernel, buffers, count)` the command buffer.
 */
export async function checkKernels(device, kernels, setUp, encodeProducts, check = 512) {
  const a = randomMatrix(check, 7), b = randomMatrix(check, 11);
  const reference = float64Product(a, b, check);
  for (const [name, kernel] of kernels) {
    const buffers = setUp(check, a, b);
    device.queue.submit([encodeProducts(check, kernel, buffers, 1)]);
    const c = await readBack(device, buffers.bufC, check * check * 4);
    console.log(JSON.stringify({ tile: name, check: `${check}^3`, ...errorAgainst(c, reference) }));
    buffers.destroy();
  }
}
