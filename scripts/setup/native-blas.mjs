// Step: build kernel/native/cpu-blas.cc, the addon through which the wasm
// backend's matrix products use the machine's BLAS (kernel/src/compute/cpu-blas.ts).
// Optional: without a C++ compiler or Node's headers the step says so and the
// products stay on the WebAssembly kernel. Needs no BLAS to build (the addon
// opens one at run time) and nothing from the network.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { runCommand } from "./process.mjs";
import { hashFiles, stampMatches, writeStamp } from "./stamps.mjs";

/** Where Node's own headers (node_api.h) are: next to this node binary, or where distributions put them. */
function nodeHeaders() {
  const candidates = [join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node", "/usr/local/include/node"];
  return candidates.find((dir) => existsSync(join(dir, "node_api.h")));
}

export const nativeBlasStep = {
  name: "native BLAS addon",
  async run({ root }) {
    const source = join(root, "kernel", "native", "cpu-blas.cc");
    const output = join(root, "kernel", "native", "build", "cpu-blas.node");
    if (process.platform !== "linux") return `skipped on ${process.platform} (matrix products use the WebAssembly kernel)`;
    const compiler = process.env.CXX || "g++";
    if (spawnSync(compiler, ["--version"], { stdio: "ignore" }).status !== 0) {
      return `skipped: no C++ compiler (${compiler}); matrix products use the WebAssembly kernel`;
    }
    const headers = nodeHeaders();
    if (!headers) return "skipped: Node's headers (node_api.h) not found; matrix products use the WebAssembly kernel";
    const args = ["-O2", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Werror", `-I${headers}`, source, "-o", `${output}.tmp`, "-ldl"];
    const stamp = join(root, "kernel", "native", "build", ".stamp");
    const digest = hashFiles([source]) + JSON.stringify([compiler, args]);
    if (existsSync(output) && stampMatches(stamp, digest)) return "up to date";
    mkdirSync(dirname(output), { recursive: true });
    await runCommand(compiler, args, { cwd: root, hint: "fix the compiler errors above, or unset CXX; the kernel runs without the addon" });
    renameSync(`${output}.tmp`, output);
    writeStamp(stamp, digest);
    return `built kernel/native/build/cpu-blas.node (${compiler})`;
  },
};
