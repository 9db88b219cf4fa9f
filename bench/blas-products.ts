/**
 * `npm run bench:blas-products`: the MLP's eight matrix products (bench:compute's
 * 784-512-512-10 at batch 256: three forward, two input gradients, three weight
 * gradients) through each library the CPU products can use, each timed alone
 * with its operands hot: OpenBLAS (on the kernels that fit the core, as the
 * baselines run it: bench/baseline-blas.mjs) and oneDNN. A process opens one
 * library (kernel/native/cpu-blas.cc), so each round runs one child process per
 * library, alternating. Prints per product the median [min, max] of the timed
 * calls of all rounds and oneDNN's ratio to OpenBLAS.
 * Flags: --calls N (timed calls per product and round, default 30) --warmup N (default 10) --rounds N (default 3)
 * Child mode (internal): --child, with DISTLAB_CPU_BLAS naming the library; prints one JSON line.
 */
import { execFileSync } from "node:child_process";
import { openblasMisfit, openCpuBlas } from "../kernel/src/compute/cpu-blas";
import { openCpuVector } from "../kernel/src/compute/cpu-vector";
import type { ProductShape } from "../kernel/src/compute/wasm/gemm";
import { formatSummary, formatTable, intOption, machineLine, MIN_REPS, ratioOfMedians, summarize } from "./stats";

const argv = process.argv.slice(2);
const calls = intOption(argv, "calls", 30);
const warmup = intOption(argv, "warmup", 10, 0);
const rounds = intOption(argv, "rounds", 3);
if (calls * rounds < MIN_REPS) throw new RangeError(`--calls ${calls} x --rounds ${rounds}: at least ${MIN_REPS} timed calls per figure`);

/** [label, shape]: m x k by k x n, transposes as the MLP's backward takes them. */
const PRODUCTS: Array<[string, ProductShape]> = [
  ["forward 1: x W1", { m: 256, k: 784, n: 512, transposeA: false, transposeB: false }],
  ["forward 2: h1 W2", { m: 256, k: 512, n: 512, transposeA: false, transposeB: false }],
  ["forward 3: h2 W3", { m: 256, k: 512, n: 10, transposeA: false, transposeB: false }],
  ["dx 3: dy W3^T", { m: 256, k: 10, n: 512, transposeA: false, transposeB: true }],
  ["dx 2: dz W2^T", { m: 256, k: 512, n: 512, transposeA: false, transposeB: true }],
  ["dW 3: h2^T dy", { m: 512, k: 256, n: 10, transposeA: true, transposeB: false }],
  ["dW 2: h1^T dz", { m: 512, k: 256, n: 512, transposeA: true, transposeB: false }],
  ["dW 1: x^T dz", { m: 784, k: 256, n: 512, transposeA: true, transposeB: false }],
];

function child(): void {
  const blas = openCpuBlas(process.env);
  if ("missing" in blas) throw new Error(`no library: ${blas.missing}`);
  const times: Record<string, number[]> = {};
  for (const [label, shape] of PRODUCTS) {
    const a = Float32Array.from({ length: shape.m * shape.k }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: shape.k * shape.n }, (_, i) => Math.cos(i));
    const out = new Float32Array(shape.m * shape.n);
    const run = () => blas.multiply({ data: a, offset: 0 }, { data: b, offset: 0 }, { data: out, offset: 0 }, shape);
    for (let i = 0; i < warmup; i++) run();
    times[label] = Array.from({ length: calls }, () => { const started = performance.now(); run(); return (performance.now() - started) * 1000; });
  }
  console.log(JSON.stringify({ library: blas.library, config: blas.config, times }));
}

function main(): void {
  // OpenBLAS on the kernels that fit this core, whatever model it takes the CPU for.
  const probe = execFileSync(process.execPath, ["--import", "tsx", "-e", `const b = require(${JSON.stringify(require.resolve("../kernel/src/compute/cpu-blas"))}).openCpuBlas(process.env); console.log(b.config ?? "")`], { encoding: "utf8", env: { ...process.env, DISTLAB_CPU_BLAS: "libopenblas.so.0" } }).trim();
  const misfit = openblasMisfit(probe, openCpuVector({})?.isa());
  const coreType = process.env.OPENBLAS_CORETYPE ?? misfit?.coreType;
  const libraries: Array<[string, NodeJS.ProcessEnv]> = [
    ["libopenblas.so.0", { DISTLAB_CPU_BLAS: "libopenblas.so.0", ...(coreType ? { OPENBLAS_CORETYPE: coreType } : {}) }],
    ["libdnnl.so.2", { DISTLAB_CPU_BLAS: "libdnnl.so.2" }],
  ];
  console.log(`bench:blas-products  ${machineLine()}`);
  const pooled = new Map<string, { config?: string; times: Record<string, number[]> }>();
  for (let round = 0; round < rounds; round++) {
    for (const [library, env] of libraries) {
      const out = execFileSync(process.execPath, ["--import", "tsx", __filename, "--child", "--calls", String(calls), "--warmup", String(warmup)], { encoding: "utf8", env: { ...process.env, ...env, DISTLAB_CPU_BLAS_THREADS: "1" } });
      const got = JSON.parse(out.trim().split("\n").pop()!) as { config?: string; times: Record<string, number[]> };
      const before = pooled.get(library);
      pooled.set(library, { config: got.config, times: Object.fromEntries(PRODUCTS.map(([label]) => [label, [...(before?.times[label] ?? []), ...got.times[label]!]])) });
    }
  }
  console.log(`finished ${machineLine()}`);
  for (const [library] of libraries) console.log(`${library}: ${pooled.get(library)!.config}${library.startsWith("libopenblas") && coreType ? ` (OPENBLAS_CORETYPE=${coreType}${misfit && !process.env.OPENBLAS_CORETYPE ? `: as loaded it took the CPU for ${misfit.took}` : ""})` : ""}`);
  console.log(`one thread; ${rounds} alternating rounds of ${warmup} warm-up + ${calls} timed calls per product and library, operands hot; us per call, median [min, max]; ratio of medians.\n`);
  const rows = [["product (m x k by k x n)", "OpenBLAS", "oneDNN", "oneDNN / OpenBLAS"]];
  let totalOpenblas = 0, totalOnednn = 0;
  for (const [label, { m, k, n }] of PRODUCTS) {
    const openblas = summarize(pooled.get("libopenblas.so.0")!.times[label]!, `OpenBLAS ${label}`);
    const onednn = summarize(pooled.get("libdnnl.so.2")!.times[label]!, `oneDNN ${label}`);
    totalOpenblas += openblas.median;
    totalOnednn += onednn.median;
    rows.push([`${label} (${m}x${k} by ${k}x${n})`, formatSummary(openblas, 0), formatSummary(onednn, 0), `${ratioOfMedians(onednn, openblas).toFixed(2)}x`]);
  }
  rows.push(["the eight, sum of medians", totalOpenblas.toFixed(0), totalOnednn.toFixed(0), `${(totalOnednn / totalOpenblas).toFixed(2)}x`]);
  console.log(formatTable(rows));
}

if (argv.includes("--child")) child();
else main();
