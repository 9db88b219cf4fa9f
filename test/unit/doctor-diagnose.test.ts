import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { diagnose, formatDiagnosis, vulkanLoaderPackage, type Check } from "../../kernel/src/doctor/diagnose";
import type { MachineFacts } from "../../kernel/src/doctor/facts";

/** A laptop without a GPU where everything of the basics is in place. */
function cpuLaptop(overrides: Partial<MachineFacts> = {}): MachineFacts {
  return {
    nodeVersion: "20.19.2",
    platform: "linux",
    distro: { id: "ubuntu", idLike: ["debian"] },
    packages: { "@tensorflow/tfjs-backend-wasm": true, "@tensorflow/tfjs-backend-webgpu": true, webgpu: true, "@tensorflow/tfjs-node": false, "@tensorflow/tfjs-node-gpu": false },
    gpuDeviceNodes: [],
    nvidiaGpus: [],
    vulkanDrivers: [],
    commands: { ssh: "/usr/bin/ssh", unshare: "/usr/bin/unshare", python3: "/usr/bin/python3" },
    jupyter: {
      command: "/home/u/env/bin/jupyter",
      kernelspec: { resourceDir: "/home/u/env/share/jupyter/kernels/distlab", argv: ["/usr/bin/node", "/home/u/distlab/dist/cli.js", "kernel"] },
      labextension: { enabled: true, ok: true, line: "@distlab/timeline v0.1.0 enabled OK (python, distlab)" },
    },
    ...overrides,
  };
}

/** A box with NVIDIA GPUs where the webgpu chain works. */
function gpuBox(overrides: Partial<MachineFacts> = {}): MachineFacts {
  return cpuLaptop({
    gpuDeviceNodes: ["/dev/nvidia0", "/dev/nvidia1"],
    nvidiaGpus: ["/dev/nvidia0", "/dev/nvidia1"],
    vulkanLoader: "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
    vulkanDrivers: ["/usr/share/vulkan/icd.d/nvidia_icd.json"],
    gpuAdapter: { ok: true, detail: "nvidia nvidia-h200 (vulkan)" },
    gpuIsolation: { ok: true, detail: "unshare -m can hide /dev/nvidia0 from a rank" },
    ...overrides,
  });
}

function check(facts: MachineFacts, name: string): Check {
  const found = diagnose(facts).sections.flatMap((s) => s.checks).find((c) => c.name === name);
  assert.ok(found, `no check named ${name}`);
  return found;
}

test("a CPU laptop with Jupyter and the kernelspec passes the basics; webgpu is missing for want of a GPU device node", () => {
  const diagnosis = diagnose(cpuLaptop());
  assert.equal(diagnosis.basicsOk, true);
  const webgpu = check(cpuLaptop(), "webgpu backend");
  assert.equal(webgpu.status, "missing");
  assert.match(webgpu.detail, /no GPU device node/);
  assert.equal(check(cpuLaptop(), "wasm backend").status, "ok");
  assert.match(formatDiagnosis(diagnosis), /basics: ok/);
});

test("the webgpu chain names its first missing link: package, Vulkan loader per distribution, then the adapter", () => {
  const noPackage = check(gpuBox({ packages: { ...cpuLaptop().packages, webgpu: false } }), "webgpu backend");
  assert.match(noPackage.detail, /npm package webgpu not installed/);
  assert.equal(noPackage.fix, "npm install webgpu (in the folder distlab is installed in)");

  const noLoader = gpuBox({ vulkanLoader: undefined });
  assert.match(check(noLoader, "webgpu backend").detail, /Vulkan loader/);
  assert.equal(check(noLoader, "webgpu backend").fix, "sudo apt-get install libvulkan1");
  assert.equal(check({ ...noLoader, distro: { id: "fedora", idLike: [] } }, "webgpu backend").fix, "sudo dnf install vulkan-loader");
  assert.equal(vulkanLoaderPackage({ id: "arch", idLike: [] }), "sudo pacman -S vulkan-icd-loader");
  assert.equal(vulkanLoaderPackage({ id: "opensuse-leap", idLike: ["suse", "opensuse"] }), "sudo zypper install libvulkan1");
  assert.match(vulkanLoaderPackage(undefined), /libvulkan1 on Debian\/Ubuntu, vulkan-loader on Fedora/);

  const noAdapter = gpuBox({ gpuAdapter: { ok: false, reason: "requestAdapter() returned null" }, vulkanDrivers: [] });
  const webgpu = check(noAdapter, "webgpu backend");
  assert.match(webgpu.detail, /Dawn returned no adapter: requestAdapter\(\) returned null; no Vulkan driver manifest/);
  assert.match(webgpu.fix!, /nvidia_icd\.json/);

  assert.equal(check(gpuBox(), "webgpu backend").status, "ok");
  assert.equal(check(gpuBox(), "webgpu backend").detail, "nvidia nvidia-h200 (vulkan)");
});

test("GPU isolation: reported for 2+ GPUs, with the sysctl fix when mounting is refused; never part of the basics", () => {
  assert.equal(check(gpuBox(), "one rank per GPU").status, "ok");
  const refused = gpuBox({ gpuIsolation: { ok: false, reason: "mount: permission denied" } });
  const isolation = check(refused, "one rank per GPU");
  assert.equal(isolation.status, "missing");
  assert.match(isolation.detail, /permission denied/);
  assert.match(isolation.fix!, /kernel\.unprivileged_userns_clone=1/);
  assert.equal(diagnose(refused).basicsOk, true);
  const noUnshare = gpuBox({ gpuIsolation: { ok: false, reason: "spawn unshare ENOENT" }, commands: { ssh: undefined, unshare: undefined, python3: undefined } });
  assert.equal(check(noUnshare, "one rank per GPU").fix, "install util-linux (it provides unshare)");
  assert.equal(check(gpuBox({ nvidiaGpus: ["/dev/nvidia0"], gpuIsolation: undefined }), "one rank per GPU").status, "note");
});

test("missing launchers are notes with their fix, not failures", () => {
  const facts = cpuLaptop({ commands: { ssh: undefined, unshare: "/usr/bin/unshare", python3: undefined } });
  const ssh = check(facts, "ssh");
  assert.equal(ssh.status, "note");
  assert.match(ssh.fix!, /openssh-client/);
  assert.equal(diagnose(facts).basicsOk, true);
});

test("Jupyter missing, or the kernelspec not registered, fails the basics with the command that fixes it", () => {
  const noJupyter = cpuLaptop({ jupyter: {} });
  assert.equal(diagnose(noJupyter).basicsOk, false);
  assert.match(check(noJupyter, "Jupyter").fix!, /pip install jupyterlab/);
  const noSpec = cpuLaptop({ jupyter: { command: "/usr/bin/jupyter" } });
  assert.equal(diagnose(noSpec).basicsOk, false);
  assert.match(check(noSpec, "distlab kernelspec").fix!, /npx distlab install --user/);
  const text = formatDiagnosis(diagnose(noSpec));
  assert.match(text, /\[MISS\] distlab kernelspec: Jupyter does not list a kernel named distlab\n\s+fix: npx distlab install/);
  assert.match(text, /basics: MISSING/);
});

test("the timeline extension: absent or disabled is reported with its fix but the basics still pass", () => {
  const disabled = cpuLaptop({ jupyter: { ...cpuLaptop().jupyter, labextension: { enabled: false, ok: true, line: "@distlab/timeline v0.1.0 disabled OK" } } });
  assert.equal(check(disabled, "timeline extension").fix, "jupyter labextension enable @distlab/timeline");
  const absent = cpuLaptop({ jupyter: { ...cpuLaptop().jupyter, labextension: undefined } });
  assert.match(check(absent, "timeline extension").fix!, /Install into your own Jupyter/);
  assert.equal(diagnose(absent).basicsOk, true);
});

test("Node older than 20 fails the basics", () => {
  const old = cpuLaptop({ nodeVersion: "18.20.4" });
  assert.equal(diagnose(old).basicsOk, false);
  assert.match(check(old, "Node.js").detail, /18\.20\.4 is older than 20/);
});

test("`distlab doctor` on this machine prints every section and exits 0 exactly when the basics are ok", () => {
  const cli = join(__dirname, "..", "..", "kernel", "dist", "cli.js");
  // .venv/bin first: the repository's own Jupyter, with the kernelspec that `npm run setup` registered.
  const venvBin = join(__dirname, "..", "..", ".venv", "bin");
  const run = (path: string) => spawnSync(process.execPath, [cli, "doctor"], { encoding: "utf8", env: { ...process.env, PATH: path, VIRTUAL_ENV: "" }, timeout: 120_000 });
  const good = run(`${venvBin}:${process.env.PATH}`);
  for (const title of ["Node.js", "TensorFlow.js backends", "GPUs", "Launchers", "Jupyter"]) assert.match(good.stdout, new RegExp(`^${title}$`, "m"));
  assert.match(good.stdout, /\[ok  \] distlab kernelspec: /);
  assert.match(good.stdout, /\[ok  \] timeline extension: @distlab\/timeline v[\d.]+ enabled OK/);
  assert.equal(good.status, 0, good.stdout + good.stderr);
  // Without any jupyter on PATH the basics fail, and the report says how to fix it.
  const bare = run("/nonexistent");
  assert.equal(bare.status, 1, bare.stdout + bare.stderr);
  assert.match(bare.stdout, /\[MISS\] Jupyter: no `jupyter` command on PATH\n\s+fix: pip install jupyterlab/);
});

test("CPU matMul: the BLAS in use, or a note saying why the WebAssembly kernel serves the products and how to change it", () => {
  const blasCheck = (cpuBlas: MachineFacts["cpuBlas"]) => diagnose(cpuLaptop({ cpuBlas })).sections.flatMap((s) => s.checks).find((c) => c.name === "CPU matMul (BLAS)");
  assert.deepEqual(blasCheck({ ok: true, detail: "libopenblas.so.0 (OpenBLAS 0.3.21 SkylakeX), 1 thread a product" }), { name: "CPU matMul (BLAS)", status: "ok", detail: "libopenblas.so.0 (OpenBLAS 0.3.21 SkylakeX), 1 thread a product" });
  const noLibrary = blasCheck({ ok: false, reason: "no BLAS library found (cannot load libopenblas.so.0: ...)" })!;
  assert.equal(noLibrary.status, "note");
  assert.match(noLibrary.fix!, /apt-get install libdnnl2/);
  assert.match(blasCheck({ ok: false, reason: "the native addon /x/cpu-blas.node is not built (npm run setup builds it ...)" })!.fix!, /install g\+\+.*npm run setup/);
  assert.equal(blasCheck({ ok: false, reason: "DISTLAB_CPU_BLAS=off" })!.fix, undefined, "switched off on purpose: nothing to fix");
  assert.equal(blasCheck(undefined), undefined, "not probed: no line");
  // An OpenBLAS that took the CPU for an older one works, slowly: a note with both ways out.
  const misfit = blasCheck({ ok: true, detail: "libopenblas.so.0 (OpenBLAS 0.3.21 DYNAMIC_ARCH Prescott), 1 thread a product", misfit: { took: "Prescott", coreType: "SkylakeX" } })!;
  assert.equal(misfit.status, "note");
  assert.match(misfit.detail, /^libopenblas\.so\.0 \(OpenBLAS 0\.3\.21 DYNAMIC_ARCH Prescott\), 1 thread a product: this OpenBLAS does not know the CPU and runs its Prescott kernels/);
  assert.match(misfit.fix!, /apt-get install libdnnl2\), or set OPENBLAS_CORETYPE=SkylakeX/);
  const basics = diagnose(cpuLaptop({ cpuBlas: { ok: false, reason: "no BLAS library found" } }));
  assert.equal(basics.basicsOk, true, "a missing BLAS is not a missing basic");
});

test("CPU vector passes: the instruction set in use, or a note saying why the WebAssembly loops run and how to change it", () => {
  const check = (cpuVector: MachineFacts["cpuVector"]) => diagnose(cpuLaptop({ cpuVector })).sections.flatMap((s) => s.checks).find((c) => c.name === "CPU vector passes (native)");
  assert.deepEqual(check({ ok: true, detail: "GELU, causal softmax, layer norm, Add and bias sums at avx512f" }), { name: "CPU vector passes (native)", status: "ok", detail: "GELU, causal softmax, layer norm, Add and bias sums at avx512f" });
  const unbuilt = check({ ok: false, reason: "the native addon /x/cpu-vector.node is not built (npm run setup builds it ...)" })!;
  assert.equal(unbuilt.status, "note");
  assert.match(unbuilt.detail, /^WebAssembly loops: the native addon/);
  assert.match(unbuilt.fix!, /install g\+\+.*npm run setup/);
  assert.equal(check({ ok: false, reason: "DISTLAB_CPU_VECTOR=off" })!.fix, undefined, "switched off on purpose: nothing to fix");
  assert.match(check({ ok: false, reason: 'DISTLAB_CPU_VECTOR must be "off", got "yes"' })!.fix!, /unset DISTLAB_CPU_VECTOR/);
  assert.equal(check(undefined), undefined, "not probed: no line");
});

test("thread collectives: the native addons in use, or a note naming the missing one and how to build it", () => {
  const check = (threadCollectives: MachineFacts["threadCollectives"]) => diagnose(cpuLaptop({ threadCollectives })).sections.flatMap((s) => s.checks).find((c) => c.name === "thread collectives (native)");
  assert.equal(check({ ok: true, detail: "plain arrays read by address" })!.status, "ok");
  const unbuilt = check({ ok: false, reason: "/x/peer-memory.node is not built" })!;
  assert.equal(unbuilt.status, "note");
  assert.match(unbuilt.detail, /copies through shared memory and full collections: \/x\/peer-memory.node is not built/);
  assert.match(unbuilt.fix!, /install g\+\+.*npm run setup/);
  assert.match(check({ ok: false, reason: "/x/peer-memory.node does not load (wrong ELF class)" })!.fix!, /rerun `npm run setup`/);
  assert.equal(check(undefined), undefined, "not probed: no line");
  assert.equal(diagnose(cpuLaptop({ threadCollectives: { ok: false, reason: "x is not built" } })).basicsOk, true, "missing addons are not a missing basic");
});

test("distlab doctor on this machine names the BLAS that npm test's set-up installed", () => {
  const run = spawnSync(process.execPath, ["--import", "tsx", join(__dirname, "..", "..", "kernel", "src", "cli.ts"), "doctor"], { encoding: "utf8", timeout: 120_000 });
  assert.match(run.stdout, /CPU matMul \(BLAS\): libdnnl\.so\.[23] \(oneDNN [0-9.]+ \(OpenMP\)\), 1 thread a product/, run.stdout + run.stderr);
  assert.match(run.stdout, /thread collectives \(native\): plain arrays read by address/, run.stdout + run.stderr);
});