/**
 * The probes of `distlab doctor` on the real machine: each reads one thing
 * (a file, a package, a command's answer) and never throws; a probe that
 * cannot answer records why. Slow ones (Dawn's adapter, Jupyter) run in child
 * processes with time limits, side by side and without blocking the event
 * loop, so a kernel running `%dist doctor` loads nothing it did not have.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync, readFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { checkGpuIsolation, listGpuDeviceNodes, unshareFlags } from "../cluster/backends/gpus/gpu-isolation";
import { DROPPED_RESULTS_ADDON } from "../comm/dropped-results";
import { PEER_MEMORY_ADDON } from "../comm/peer-memory";
import { openblasMisfit, openCpuBlas } from "../compute/cpu-blas";
import { openCpuVector, VECTOR_ADDON_PATH } from "../compute/cpu-vector";
import { LAUNCHER_COMMANDS, OPTIONAL_PACKAGES, type JupyterFacts, type MachineFacts, type Outcome } from "./facts";

/** How long one probe's child process may take (milliseconds): Dawn on a busy driver, Jupyter's first start. */
const CHILD_TIMEOUT_MS = 30_000;

interface ChildResult {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** Runs a child to its end (or the time limit) and resolves with what it printed; never rejects. */
function runChild(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<ChildResult> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: "utf8", env, timeout: CHILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      resolve({ status: error ? (typeof code === "number" ? code : null) : 0, stdout: stdout ?? "", stderr: stderr ?? "", error: error && typeof code !== "number" ? error : undefined });
    });
  });
}

const VULKAN_LOADER_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/local/lib"];
const VULKAN_ICD_DIRS = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/usr/local/nvidia/share/vulkan/icd.d"];

export function readDistro(path = "/etc/os-release"): MachineFacts["distro"] {
  try {
    const fields = new Map(readFileSync(path, "utf8").split("\n").map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1).replace(/^"|"$/g, "")] as const;
    }));
    return { id: fields.get("ID") ?? "", idLike: (fields.get("ID_LIKE") ?? "").split(/\s+/).filter(Boolean) };
  } catch {
    return undefined;
  }
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

export function gpuDeviceNodes(): string[] {
  const dev = safeList("/dev").filter((name) => /^nvidia\d+$/.test(name) || name === "dxg").map((name) => `/dev/${name}`);
  const dri = safeList("/dev/dri").filter((name) => name.startsWith("renderD")).map((name) => `/dev/dri/${name}`);
  return [...dev, ...dri];
}

/** The package's entry as the kernel would load it, or undefined. */
function resolvePackage(name: string): string | undefined {
  try {
    return require.resolve(name);
  } catch {
    return undefined;
  }
}

/** `command`'s path on PATH, or undefined. */
export function onPath(command: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function vulkanLoader(): Promise<string | undefined> {
  const fromLdconfig = await runChild("ldconfig", ["-p"]);
  const line = fromLdconfig.stdout.split("\n").find((row) => row.includes("libvulkan.so.1"));
  if (line) return line.split("=>").pop()?.trim();
  return VULKAN_LOADER_DIRS.map((dir) => join(dir, "libvulkan.so.1")).find((path) => existsSync(path));
}

function vulkanDrivers(env: NodeJS.ProcessEnv): string[] {
  const named = (env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES ?? "").split(":").filter((path) => path !== "" && existsSync(path));
  return [...named, ...VULKAN_ICD_DIRS.flatMap((dir) => safeList(dir).filter((name) => name.endsWith(".json")).map((name) => join(dir, name)))];
}

/** Asks Dawn for an adapter in a child process: a hanging driver or Vulkan's warnings stay out of this one. */
async function gpuAdapter(webgpuEntry: string): Promise<Outcome> {
  const script = `
const dawn = require(${JSON.stringify(webgpuEntry)});
const gpu = dawn.create([]);
const timer = setTimeout(() => { console.log(JSON.stringify({ ok: false, reason: "requestAdapter() did not answer in 10 s" })); process.exit(0); }, 10000);
gpu.requestAdapter({ powerPreference: "high-performance" }).then((adapter) => {
  clearTimeout(timer);
  if (adapter === null) console.log(JSON.stringify({ ok: false, reason: "requestAdapter() returned null" }));
  else {
    const info = adapter.info || {};
    const name = [info.vendor, info.device || info.description, info.backendType && "(" + info.backendType + ")"].filter(Boolean).join(" ");
    if (info.adapterType === "CPU") console.log(JSON.stringify({ ok: false, reason: "the only adapter is a CPU emulation: " + name }));
    else console.log(JSON.stringify({ ok: true, detail: name }));
  }
  process.exit(0);
}, (error) => { clearTimeout(timer); console.log(JSON.stringify({ ok: false, reason: String(error && error.message || error) })); process.exit(0); });`;
  const child = await runChild(process.execPath, ["-e", script]);
  const last = child.stdout.trim().split("\n").pop();
  try {
    return JSON.parse(last ?? "") as Outcome;
  } catch {
    const why = child.error?.message ?? (child.stderr.trim().split("\n").pop() || `exit status ${child.status}`);
    return { ok: false, reason: `the adapter probe failed: ${why}` };
  }
}

function gpuIsolation(nodes: string[]): Outcome | undefined {
  if (nodes.length < 2) return undefined;
  try {
    checkGpuIsolation(nodes);
    return { ok: true, detail: `unshare ${unshareFlags().join(" ")} can hide ${nodes[0]} from a rank` };
  } catch (error) {
    return { ok: false, reason: (error as Error).message.replace(/^--backend gpus: /, "") };
  }
}

/** The jupyter command: on PATH, else in the active virtualenv / conda env, else next to python3's sys.prefix. */
function findJupyter(env: NodeJS.ProcessEnv): string | undefined {
  const found = onPath("jupyter", env.PATH);
  if (found) return found;
  for (const prefix of [env.VIRTUAL_ENV, env.CONDA_PREFIX]) {
    if (prefix && existsSync(join(prefix, "bin", "jupyter"))) return join(prefix, "bin", "jupyter");
  }
  return undefined;
}

export async function jupyterFacts(env: NodeJS.ProcessEnv = process.env): Promise<JupyterFacts> {
  const command = findJupyter(env);
  if (command === undefined) return {};
  // The environment's own bin first, so `jupyter kernelspec` runs that environment's Python.
  const childEnv = { ...env, PATH: [dirname(command), env.PATH].filter(Boolean).join(delimiter) };
  const [specs, extensions] = await Promise.all([
    runChild(command, ["kernelspec", "list", "--json"], childEnv),
    runChild(command, ["labextension", "list"], childEnv),
  ]);
  const facts: JupyterFacts = { command };
  if (specs.status !== 0) {
    facts.error = `\`jupyter kernelspec list\` failed: ${(specs.error?.message ?? specs.stderr).trim().split("\n").pop()}`;
    return facts;
  }
  try {
    const distlab = (JSON.parse(specs.stdout) as { kernelspecs: Record<string, { resource_dir: string; spec: { argv: string[] } }> }).kernelspecs.distlab;
    if (distlab) facts.kernelspec = { resourceDir: distlab.resource_dir, argv: distlab.spec.argv };
  } catch (error) {
    facts.error = `\`jupyter kernelspec list --json\` printed no JSON: ${(error as Error).message}`;
  }
  // JupyterLab prints the listing on stderr, with colour codes around "enabled" and "OK".
  const listing = `${extensions.stdout}\n${extensions.stderr}`.replace(/\x1b\[[0-9;]*m/g, "");
  const line = listing.split("\n").find((row) => row.includes("@distlab/timeline"));
  if (line !== undefined) facts.labextension = { line, enabled: /\benabled\b/.test(line), ok: /\bOK\b/.test(line) };
  return facts;
}

/** Everything `distlab doctor` reports, read from this machine. */
export async function probeMachine(env: NodeJS.ProcessEnv = process.env): Promise<MachineFacts> {
  const packages = Object.fromEntries(OPTIONAL_PACKAGES.map((name) => [name, resolvePackage(name) !== undefined])) as MachineFacts["packages"];
  const nodes = gpuDeviceNodes();
  const nvidiaGpus = listGpuDeviceNodes();
  const jupyter = jupyterFacts(env);
  const loader = process.platform === "linux" ? await vulkanLoader() : undefined;
  const webgpuEntry = resolvePackage("webgpu");
  const adapter = nodes.length > 0 && webgpuEntry !== undefined && loader !== undefined ? gpuAdapter(webgpuEntry) : undefined;
  const facts: MachineFacts = {
    nodeVersion: process.versions.node,
    platform: process.platform,
    distro: readDistro(),
    packages,
    gpuDeviceNodes: nodes,
    nvidiaGpus,
    vulkanLoader: loader,
    vulkanDrivers: vulkanDrivers(env),
    commands: Object.fromEntries(LAUNCHER_COMMANDS.map((name) => [name, onPath(name, env.PATH)])) as MachineFacts["commands"],
    jupyter: await jupyter,
  };
  facts.cpuBlas = cpuBlasOutcome(env);
  facts.cpuVector = cpuVectorOutcome(env);
  facts.threadCollectives = threadCollectivesOutcome();
  if (adapter !== undefined) facts.gpuAdapter = await adapter;
  const isolation = gpuIsolation(nvidiaGpus);
  if (isolation !== undefined) facts.gpuIsolation = isolation;
  return facts;
}

/** Whether the thread world's native collective addons load here (both are built by `npm run setup` with g++). */
function threadCollectivesOutcome(): Outcome {
  const missing: string[] = [];
  for (const addon of [PEER_MEMORY_ADDON, DROPPED_RESULTS_ADDON]) {
    try {
      require(addon);
    } catch (error) {
      missing.push(existsSync(addon) ? `${addon} does not load (${(error as Error).message.split("\n")[0]})` : `${addon} is not built`);
    }
  }
  if (missing.length > 0) return { ok: false, reason: missing.join("; ") };
  return { ok: true, detail: "plain arrays read by address between rank threads; dropped results found by scavenges" };
}

/** Whether a rank here would run the wasm kernels' passes natively, and on which instruction set. */
function cpuVectorOutcome(env: NodeJS.ProcessEnv): Outcome {
  try {
    const vector = openCpuVector(env);
    if (vector) return { ok: true, detail: `GELU, causal softmax, layer norm, Add and bias sums at ${vector.isa()}` };
    if (env.DISTLAB_CPU_VECTOR?.trim() === "off") return { ok: false, reason: "DISTLAB_CPU_VECTOR=off" };
    return { ok: false, reason: `the native addon ${VECTOR_ADDON_PATH} is not built (npm run setup builds it where g++ and Node's headers are installed)` };
  } catch (error) {
    return { ok: false, reason: (error as Error).message.split("\n")[0]! };
  }
}

/** Which BLAS the CPU matrix products would use here, as a rank would open it, and whether its kernels fit the core. */
function cpuBlasOutcome(env: NodeJS.ProcessEnv): NonNullable<MachineFacts["cpuBlas"]> {
  try {
    const found = openCpuBlas(env);
    if ("missing" in found) return { ok: false, reason: found.missing };
    const detail = `${found.library}${found.config ? ` (${found.config.trim()})` : ""}, ${found.threads} thread${found.threads === 1 ? "" : "s"} a product`;
    const misfit = found.kind === "cblas" ? openblasMisfit(found.config, openCpuVector({})?.isa()) : undefined;
    return { ok: true, detail, ...(misfit ? { misfit } : {}) };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
