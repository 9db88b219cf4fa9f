// Step: build the kernel's optional native addons with g++ and Node's own
// headers, nothing from the network:
//   kernel/native/cpu-blas.cc     the wasm backend's matrix products on the machine's BLAS
//                                 (kernel/src/compute/cpu-blas.ts; needs no BLAS to build,
//                                 it opens one at run time), with cpu-attention.cc: causal
//                                 attention on that BLAS (kernel/src/compute/wasm/causal-attention.ts)
//   kernel/native/cpu-vector.cc   the wasm backend's elementwise passes (GELU) at the core's widest
//                                 vectors (kernel/src/compute/cpu-vector.ts)
//   kernel/native/peer-memory.cc  the thread world's allReduce reading peers' arrays in place
//                                 (kernel/src/comm/peer-memory.ts)
//   kernel/native/dropped-results.cc  pooled results that a scavenge finds dropped
//                                 (kernel/src/comm/dropped-results.ts)
//   kernel/native/tcp-ring.cc     the ring allReduce between hosts on a thread of its own
//                                 (kernel/src/comm/tcp-native-ring.ts)
// Without a C++ compiler or the headers the step says so; the kernel then runs
// on its WebAssembly kernels and shared-memory copies. An addon the compiler
// fails on is reported and left out; the others are still built.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { runCommand } from "./process.mjs";
import { hashFiles, stampMatches, writeStamp } from "./stamps.mjs";

/** Where Node's own headers (node_api.h) are: next to this node binary, or where distributions put them. */
function nodeHeaders() {
  const candidates = [join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node", "/usr/local/include/node"];
  return candidates.find((dir) => existsSync(join(dir, "node_api.h")));
}

/**
 * Each addon: its sources (kernel/native/NAME.cc and any more listed), the headers they include
 * (part of its stamp) and extra flags; the result is kernel/native/build/NAME.node.
 */
const ADDONS = [
  // -O3 and the rest as cpu-vector's: cpu-attention.cc compiles vector-loops.h's causal softmax
  {
    name: "cpu-blas", more: ["cpu-attention.cc"], headers: ["float-args.h", "cpu-blas.h", "vector-loops.h"],
    flags: ["-O3", "-ffp-contract=fast", "-fopenmp-simd"], libraries: ["-ldl"],
  },
  // -O3, contracted multiply-adds and `omp simd` reductions: the loops vectorise, each cloned per instruction set
  // (the source says why); -fopenmp-simd reads only the simd pragmas, no OpenMP runtime
  { name: "cpu-vector", headers: ["float-args.h", "vector-loops.h"], flags: ["-O3", "-ffp-contract=fast", "-fopenmp-simd"], libraries: [] },
  // -O3: the reduction loops vectorise (memory-bound: wider than SSE2 buys nothing portable)
  { name: "peer-memory", flags: ["-O3"], libraries: [] },
  { name: "dropped-results", flags: ["-O2"], libraries: [] },
  // -O3: the combining loops vectorise
  { name: "tcp-ring", flags: ["-O3"], libraries: [] },
];

export const nativeAddonsStep = {
  name: "native addons (BLAS, vector passes, peer memory, dropped results, TCP ring)",
  async run({ root }) {
    if (process.platform !== "linux") return `skipped on ${process.platform} (WebAssembly kernels and shared-memory copies are used)`;
    const compiler = process.env.CXX || "g++";
    if (spawnSync(compiler, ["--version"], { stdio: "ignore" }).status !== 0) {
      return `skipped: no C++ compiler (${compiler}); WebAssembly kernels and shared-memory copies are used`;
    }
    const headers = nodeHeaders();
    if (!headers) return "skipped: Node's headers (node_api.h) not found; WebAssembly kernels and shared-memory copies are used";
    const said = [];
    for (const addon of ADDONS) {
      const sources = [`${addon.name}.cc`, ...(addon.more ?? [])].map((file) => join(root, "kernel", "native", file));
      const output = join(root, "kernel", "native", "build", `${addon.name}.node`);
      const args = [...addon.flags, "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror", `-I${headers}`, ...sources, "-o", `${output}.tmp`, ...addon.libraries];
      const stamp = join(root, "kernel", "native", "build", `.${addon.name}.stamp`);
      const digest = hashFiles([...sources, ...(addon.headers ?? []).map((header) => join(root, "kernel", "native", header))]) + JSON.stringify([compiler, args]);
      if (existsSync(output) && stampMatches(stamp, digest)) {
        said.push(`${addon.name} up to date`);
        continue;
      }
      mkdirSync(dirname(output), { recursive: true });
      try {
        await runCommand(compiler, args, { cwd: root });
      } catch (error) {
        // Each addon is optional: one this compiler cannot build must not stop the set-up (or
        // `npm run lab`). A stale build of older sources is removed, so nothing loads it.
        rmSync(output, { force: true });
        rmSync(stamp, { force: true });
        const firstError = String(error.message).split("\n").find((line) => /error:/.test(line))?.trim() ?? String(error.message).split("\n")[0];
        said.push(`NOT built ${addon.name} (${compiler}: ${firstError}); the kernel runs without it`);
        continue;
      }
      renameSync(`${output}.tmp`, output);
      writeStamp(stamp, digest);
      said.push(`built kernel/native/build/${addon.name}.node (${compiler})`);
    }
    return said.join("; ");
  },
};
