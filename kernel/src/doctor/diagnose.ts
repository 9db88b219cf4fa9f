/**
 * The decisions of `distlab doctor`: from the facts of a machine (facts.ts) to
 * one line per piece, each missing piece with the command that fixes it.
 * Pure, so tests feed it machines we do not have.
 *
 * "Basics" are what a notebook needs to run distributed cells on the CPU:
 * Node 20+, a TF.js backend that computes (wasm, else the pure-JS cpu one),
 * and Jupyter listing the distlab kernelspec. GPU pieces, launchers and the
 * timeline extension are reported but never fail the basics.
 */
import type { MachineFacts } from "./facts";

export type CheckStatus = "ok" | "missing" | "note";

export interface Check {
  /** What was checked, e.g. "Node.js", "webgpu backend". */
  name: string;
  status: CheckStatus;
  /** What was found, or why it is missing. */
  detail: string;
  /** The command or step that fixes a missing piece. */
  fix?: string;
  /** Part of the basics: a missing basic makes `distlab doctor` exit 1. */
  basic?: boolean;
}

export interface Section {
  title: string;
  checks: Check[];
}

export interface Diagnosis {
  sections: Section[];
  /** Every basic check is ok. */
  basicsOk: boolean;
}

const MINIMUM_NODE_MAJOR = 20;

/** The distribution's package that provides the Vulkan loader (libvulkan.so.1). */
export function vulkanLoaderPackage(distro: MachineFacts["distro"]): string {
  const ids = distro ? [distro.id, ...distro.idLike] : [];
  if (ids.some((id) => id === "debian" || id === "ubuntu")) return "sudo apt-get install libvulkan1";
  if (ids.some((id) => id === "fedora" || id === "rhel" || id === "centos")) return "sudo dnf install vulkan-loader";
  if (ids.some((id) => id === "arch")) return "sudo pacman -S vulkan-icd-loader";
  if (ids.some((id) => id === "suse" || id === "opensuse" || id.startsWith("opensuse"))) return "sudo zypper install libvulkan1";
  if (ids.some((id) => id === "alpine")) return "sudo apk add vulkan-loader";
  return "install your distribution's Vulkan loader package (libvulkan1 on Debian/Ubuntu, vulkan-loader on Fedora)";
}

function nodeCheck(facts: MachineFacts): Check {
  const major = Number(facts.nodeVersion.split(".")[0]);
  return major >= MINIMUM_NODE_MAJOR
    ? { name: "Node.js", status: "ok", detail: facts.nodeVersion, basic: true }
    : { name: "Node.js", status: "missing", detail: `${facts.nodeVersion} is older than ${MINIMUM_NODE_MAJOR}`, fix: `install Node.js ${MINIMUM_NODE_MAJOR} or newer (https://nodejs.org, or nvm install ${MINIMUM_NODE_MAJOR})`, basic: true };
}

/** Why webgpu is not available here, the first missing link of the chain; undefined when it works. */
function webgpuBlocker(facts: MachineFacts): { detail: string; fix: string } | undefined {
  if (facts.gpuDeviceNodes.length === 0) {
    return { detail: "no GPU device node (/dev/nvidia*, /dev/dri/renderD*)", fix: "run on a machine with a GPU and its driver loaded (nvidia-smi should list it); in a container, pass the GPU in (--gpus all)" };
  }
  if (!facts.packages.webgpu || !facts.packages["@tensorflow/tfjs-backend-webgpu"]) {
    const missing = (["webgpu", "@tensorflow/tfjs-backend-webgpu"] as const).filter((name) => !facts.packages[name]);
    return { detail: `npm package ${missing.join(" and ")} not installed`, fix: `npm install ${missing.join(" ")} (in the folder distlab is installed in)` };
  }
  if (facts.vulkanLoader === undefined) {
    return { detail: "the Vulkan loader (libvulkan.so.1) is missing", fix: vulkanLoaderPackage(facts.distro) };
  }
  if (facts.gpuAdapter !== undefined && !facts.gpuAdapter.ok) {
    const noDriver = facts.vulkanDrivers.length === 0;
    return {
      detail: `Dawn returned no adapter: ${facts.gpuAdapter.reason}${noDriver ? "; no Vulkan driver manifest (icd.d/*.json) found" : ""}`,
      fix: noDriver
        ? "install the GPU driver's Vulkan part (NVIDIA: the driver package ships nvidia_icd.json; in a container set NVIDIA_DRIVER_CAPABILITIES=all), or point VK_DRIVER_FILES at the driver's icd.json"
        : "check `vulkaninfo --summary` lists the GPU; see docs/gpus.md, \"No adapter\"",
    };
  }
  if (facts.gpuAdapter === undefined) return { detail: "the adapter was not asked for", fix: "rerun distlab doctor" };
  return undefined;
}

function backendChecks(facts: MachineFacts): Check[] {
  const checks: Check[] = [];
  const blocker = webgpuBlocker(facts);
  checks.push(blocker === undefined
    ? { name: "webgpu backend", status: "ok", detail: facts.gpuAdapter?.ok ? facts.gpuAdapter.detail : "available" }
    : { name: "webgpu backend", status: "missing", ...blocker });
  const nodeBinding = facts.packages["@tensorflow/tfjs-node-gpu"] ? "@tensorflow/tfjs-node-gpu" : facts.packages["@tensorflow/tfjs-node"] ? "@tensorflow/tfjs-node" : undefined;
  checks.push(nodeBinding
    ? { name: "tensorflow backend", status: "ok", detail: nodeBinding }
    : { name: "tensorflow backend", status: "note", detail: "@tensorflow/tfjs-node not installed (optional: native TensorFlow on the CPU)", fix: "npm install @tensorflow/tfjs-node" });
  const wasm = facts.packages["@tensorflow/tfjs-backend-wasm"];
  checks.push(wasm
    ? { name: "wasm backend", status: "ok", detail: "@tensorflow/tfjs-backend-wasm (the default without a GPU)", basic: true }
    : { name: "wasm backend", status: "missing", detail: "@tensorflow/tfjs-backend-wasm not installed: ranks fall back to the slow cpu backend", fix: "npm install @tensorflow/tfjs-backend-wasm (a dependency of distlab: reinstall distlab)" });
  if (wasm && facts.cpuBlas !== undefined) checks.push(cpuBlasCheck(facts.cpuBlas));
  if (wasm && facts.cpuVector !== undefined) checks.push(cpuVectorCheck(facts.cpuVector));
  if (facts.threadCollectives !== undefined) checks.push(threadCollectivesCheck(facts.threadCollectives));
  checks.push({ name: "cpu backend", status: "ok", detail: "pure JavaScript, always there", basic: true });
  return checks;
}

/** The wasm backend's matrix products: the machine's BLAS, or why they stay on the WebAssembly kernel (a note: it works, slower). */
function cpuBlasCheck(blas: NonNullable<MachineFacts["cpuBlas"]>): Check {
  if (blas.ok && blas.misfit) {
    // It works, at a fifth of the speed: a note with the two ways out.
    const { took, coreType } = blas.misfit;
    return {
      name: "CPU matMul (BLAS)",
      status: "note",
      detail: `${blas.detail}: this OpenBLAS does not know the CPU and runs its ${took} kernels, several times slower than the core allows`,
      fix: `install oneDNN, which distlab prefers (Debian/Ubuntu: sudo apt-get install libdnnl2), or set OPENBLAS_CORETYPE=${coreType} before starting JupyterLab`,
    };
  }
  if (blas.ok) return { name: "CPU matMul (BLAS)", status: "ok", detail: blas.detail };
  const fix = /not built/.test(blas.reason)
    ? "install g++ (Debian: sudo apt-get install g++), then rerun `npm run setup` in the distlab checkout"
    : /no BLAS library found/.test(blas.reason)
      ? "install oneDNN or OpenBLAS (Debian/Ubuntu: sudo apt-get install libdnnl2; Fedora: sudo dnf install onednn or openblas)"
      : /DISTLAB_CPU_BLAS=off/.test(blas.reason) ? undefined : "fix or unset DISTLAB_CPU_BLAS / DISTLAB_CPU_BLAS_THREADS";
  return { name: "CPU matMul (BLAS)", status: "note", detail: `WebAssembly kernel: ${blas.reason}`, ...(fix ? { fix } : {}) };
}

/** The wasm kernels' elementwise passes: native at the core's widest vectors, or why they stay on WebAssembly's 4 lanes (a note: it works, slower). */
function cpuVectorCheck(vector: NonNullable<MachineFacts["cpuVector"]>): Check {
  const name = "CPU vector passes (native)";
  if (vector.ok) return { name, status: "ok", detail: vector.detail };
  const fix = /not built/.test(vector.reason)
    ? "install g++ (Debian: sudo apt-get install g++), then rerun `npm run setup` in the distlab checkout"
    : /DISTLAB_CPU_VECTOR=off/.test(vector.reason) ? undefined : "unset DISTLAB_CPU_VECTOR, or set it to off";
  return { name, status: "note", detail: `WebAssembly loops: ${vector.reason}`, ...(fix ? { fix } : {}) };
}

/** The thread world's native collective addons: a note when missing (collectives work, through copies and full collections). */
function threadCollectivesCheck(addons: NonNullable<MachineFacts["threadCollectives"]>): Check {
  if (addons.ok) return { name: "thread collectives (native)", status: "ok", detail: addons.detail };
  const fix = /is not built/.test(addons.reason) ? "install g++ (Debian: sudo apt-get install g++), then rerun `npm run setup` in the distlab checkout" : "rerun `npm run setup` in the distlab checkout (it rebuilds the addons for this Node)";
  return { name: "thread collectives (native)", status: "note", detail: `copies through shared memory and full collections: ${addons.reason}`, fix };
}

function gpuChecks(facts: MachineFacts): Check[] {
  const count = facts.nvidiaGpus.length;
  const gpus: Check = count > 0
    ? { name: "GPUs", status: "ok", detail: `${count} NVIDIA (${facts.nvidiaGpus.join(", ")})` }
    : { name: "GPUs", status: "note", detail: facts.gpuDeviceNodes.length > 0 ? `no NVIDIA GPU; other GPU nodes: ${facts.gpuDeviceNodes.join(", ")}` : "none" };
  let isolation: Check;
  if (count < 2) {
    isolation = { name: "one rank per GPU", status: "note", detail: count === 1 ? "one GPU: nothing to hide, --backend gpus runs one rank" : "no NVIDIA GPUs for --backend gpus" };
  } else if (facts.gpuIsolation === undefined) {
    isolation = { name: "one rank per GPU", status: "note", detail: "not checked" };
  } else if (facts.gpuIsolation.ok) {
    isolation = { name: "one rank per GPU", status: "ok", detail: facts.gpuIsolation.detail };
  } else {
    isolation = {
      name: "one rank per GPU",
      status: "missing",
      detail: `a rank cannot hide the other GPUs: ${facts.gpuIsolation.reason}`,
      fix: facts.commands.unshare === undefined
        ? "install util-linux (it provides unshare)"
        : "run as root, or allow unprivileged user namespaces: sudo sysctl kernel.unprivileged_userns_clone=1 (Ubuntu 24.04+: kernel.apparmor_restrict_unprivileged_userns=0)",
    };
  }
  return [gpus, isolation];
}

function launcherChecks(facts: MachineFacts): Check[] {
  return [
    { name: "threads, processes", status: "ok", detail: "built in (--backend threads, --backend processes)" },
    facts.commands.ssh
      ? { name: "ssh", status: "ok", detail: `${facts.commands.ssh} (to start \`distlab agent\` on other hosts for --backend hosts)` }
      : { name: "ssh", status: "note", detail: "not on PATH (only needed to start agents on other hosts)", fix: "install an OpenSSH client (Debian: sudo apt-get install openssh-client)" },
    facts.commands.unshare
      ? { name: "unshare", status: "ok", detail: `${facts.commands.unshare} (--backend gpus hides the other GPUs with it)` }
      : { name: "unshare", status: "note", detail: "not on PATH (only --backend gpus with several GPUs needs it)", fix: "install util-linux" },
  ];
}

function jupyterChecks(facts: MachineFacts): Check[] {
  const { jupyter } = facts;
  if (jupyter.command === undefined) {
    return [{
      name: "Jupyter", status: "missing", basic: true,
      detail: jupyter.error ?? "no `jupyter` command on PATH",
      fix: "pip install jupyterlab (or activate the environment that has it), then `npx distlab install --sys-prefix`",
    }];
  }
  const checks: Check[] = [{ name: "Jupyter", status: "ok", detail: jupyter.command, basic: true }];
  checks.push(jupyter.kernelspec
    ? { name: "distlab kernelspec", status: "ok", detail: `${jupyter.kernelspec.resourceDir} (starts ${jupyter.kernelspec.argv.slice(0, 2).join(" ")})`, basic: true }
    : { name: "distlab kernelspec", status: "missing", detail: jupyter.error ?? "Jupyter does not list a kernel named distlab", fix: "npx distlab install --user (or --sys-prefix inside a virtualenv / conda env)", basic: true });
  const ext = jupyter.labextension;
  checks.push(ext && ext.enabled && ext.ok
    ? { name: "timeline extension", status: "ok", detail: ext.line.trim() }
    : {
      name: "timeline extension",
      status: "missing",
      detail: ext ? `listed but not enabled and OK: ${ext.line.trim()}` : "@distlab/timeline is not installed (timelines show as static pictures)",
      fix: ext && !ext.enabled ? "jupyter labextension enable @distlab/timeline" : "pip install distlab's Python package into this Jupyter's environment (pip install . in a checkout; see README, \"Install into your own Jupyter\")",
    });
  return checks;
}

export function diagnose(facts: MachineFacts): Diagnosis {
  const sections: Section[] = [
    { title: "Node.js", checks: [nodeCheck(facts)] },
    { title: "TensorFlow.js backends", checks: backendChecks(facts) },
    { title: "GPUs", checks: gpuChecks(facts) },
    { title: "Launchers", checks: launcherChecks(facts) },
    { title: "Jupyter", checks: jupyterChecks(facts) },
  ];
  const basicsOk = sections.every((section) => section.checks.every((check) => !check.basic || check.status === "ok"));
  return { sections, basicsOk };
}

const MARK: Record<CheckStatus, string> = { ok: "ok  ", missing: "MISS", note: "--  " };

/** The report as text: one line per check, each missing piece followed by "fix: ...". */
export function formatDiagnosis(diagnosis: Diagnosis): string {
  const lines: string[] = [];
  for (const section of diagnosis.sections) {
    lines.push(section.title);
    for (const check of section.checks) {
      lines.push(`  [${MARK[check.status]}] ${check.name}: ${check.detail}`);
      if (check.fix && check.status !== "ok") lines.push(`         fix: ${check.fix}`);
    }
  }
  lines.push(diagnosis.basicsOk
    ? "basics: ok (Node.js, a TensorFlow.js backend, Jupyter with the distlab kernelspec)"
    : "basics: MISSING, see the MISS lines above");
  return `${lines.join("\n")}\n`;
}
