/**
 * Shows, on a machine with several GPUs, that `--backend gpus` gives each
 * rank process exactly one GPU, and a different one per rank.
 *
 *   node build/gpu-check/isolation-check.js   (bundled by build-backend-check.ts; isolation-check.sh sets up a device machine)
 *
 * Starts one process per GPU exactly as the gpus backend starts rank i
 * (gpu-isolation.ts: a private mount namespace with every other GPU's device
 * node covered by /dev/null), plus one process started plainly for
 * comparison. Each process asks Dawn for an adapter, opens a device on it,
 * and reports the adapter's info, the GPU device nodes its mount namespace
 * covers (/proc/self/mountinfo), and the GPU device files it holds open with
 * their device numbers (NVIDIA: major 195, minor = the GPU's number; the
 * covered nodes read as /dev/null, 1:3). Exits 1 unless every rank holds
 * exactly one GPU open, its own, and no two ranks hold the same one.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { checkGpuIsolation, gpuRankLaunch, listGpuDeviceNodes, unshareFlags } from "../../kernel/src/cluster/backends/gpus/gpu-isolation";

/** NVIDIA's character-device major number; minors 0..253 are GPUs, 254 nvidia-modeset, 255 nvidiactl. */
const NVIDIA_MAJOR = 195;
const FIRST_NON_GPU_MINOR = 254;
const ADAPTER_FIELDS = ["vendor", "architecture", "device", "description", "adapterType", "backendType"];

interface OpenDeviceFile {
  path: string;
  major: number;
  minor: number;
}

interface ProcessReport {
  pid: number;
  adapter: Record<string, string> | null;
  error?: string;
  /** Mount points over GPU device nodes in this process's mount namespace. */
  coveredNodes: string[];
  /** Character devices under /dev/nvidia* this process holds open. */
  openDeviceFiles: OpenDeviceFile[];
}

async function reportThisProcess(): Promise<ProcessReport> {
  const report: ProcessReport = { pid: process.pid, adapter: null, coveredNodes: coveredGpuNodes(), openDeviceFiles: [] };
  try {
    const dawn = require("webgpu") as { create(options: string[]): { requestAdapter(options?: object): Promise<{ info?: object; requestDevice(): Promise<unknown> } | null> } };
    const adapter = await dawn.create([]).requestAdapter({ powerPreference: "high-performance" });
    if (adapter === null) throw new Error("Dawn found no adapter");
    // GPUAdapterInfo's fields are prototype getters: read them by name.
    const info = (adapter.info ?? {}) as Record<string, unknown>;
    report.adapter = Object.fromEntries(ADAPTER_FIELDS.map((key) => [key, String(info[key] ?? "")]));
    // Opening a device makes the driver open the GPU's device file, which is what the fds below show.
    await adapter.requestDevice();
  } catch (error) {
    report.error = (error as Error).message;
  }
  report.openDeviceFiles = openNvidiaFiles();
  return report;
}

function coveredGpuNodes(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((mountPoint) => /^\/dev\/nvidia\d+$/.test(mountPoint));
}

function openNvidiaFiles(): OpenDeviceFile[] {
  const files: OpenDeviceFile[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const path = readlinkSync(`/proc/self/fd/${fd}`);
      if (!path.startsWith("/dev/nvidia")) continue;
      const { rdev } = statSync(`/proc/self/fd/${fd}`);
      files.push({ path, major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) });
    } catch {
      // The fd closed meanwhile.
    }
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** "/dev/nvidia1 (195:1) x17, /dev/nvidiactl (195:255) x3": one entry per file, with how many fds hold it. */
function describeOpenFiles(files: readonly OpenDeviceFile[]): string {
  const counts = new Map<string, number>();
  for (const f of files) counts.set(`${f.path} (${f.major}:${f.minor})`, (counts.get(`${f.path} (${f.major}:${f.minor})`) ?? 0) + 1);
  return [...counts].map(([file, count]) => `${file} x${count}`).join(", ") || "none";
}

function gpuMinors(report: ProcessReport): number[] {
  return [...new Set(report.openDeviceFiles.filter((f) => f.major === NVIDIA_MAJOR && f.minor < FIRST_NON_GPU_MINOR).map((f) => f.minor))].sort((a, b) => a - b);
}

/** Starts `command` and parses the one JSON report it prints last. */
function runReporter(command: string, args: string[]): ProcessReport {
  const stdout = execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 60_000 });
  const last = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last) as ProcessReport;
}

function main(): void {
  const nodes = listGpuDeviceNodes();
  console.log(`GPU device nodes: ${nodes.join(", ") || "none"}`);
  if (nodes.length < 2) {
    console.log("need at least 2 GPUs to show anything");
    process.exit(nodes.length === 0 ? 1 : 0);
  }
  const flags = unshareFlags();
  checkGpuIsolation(nodes, flags);
  try {
    console.log(execFileSync("nvidia-smi", ["--query-gpu=index,name,pci.bus_id", "--format=csv,noheader"], { encoding: "utf8" }).trim());
  } catch {
    // nvidia-smi is only a help here.
  }
  const self = [process.execPath, __filename, "--report"];
  const plain = runReporter(self[0]!, self.slice(1));
  console.log(`\nplain process (pid ${plain.pid}), for comparison: adapter ${JSON.stringify(plain.adapter)}${plain.error ? `; error: ${plain.error}` : ""}`);
  console.log(`  open device files: ${describeOpenFiles(plain.openDeviceFiles)}`);
  const problems: string[] = [];
  const seen = new Map<number, number>();
  nodes.forEach((node, rank) => {
    const launch = gpuRankLaunch(self, nodes, rank, flags);
    console.log(`\nrank ${rank} (keeps ${node}): ${launch.command} ${launch.args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(" ")}`);
    const report = runReporter(launch.command, launch.args);
    const minors = gpuMinors(report);
    console.log(`  pid ${report.pid}; covered in its mount namespace: ${report.coveredNodes.join(", ") || "none"}`);
    console.log(`  adapter: ${JSON.stringify(report.adapter)}${report.error ? `; error: ${report.error}` : ""}`);
    console.log(`  open device files: ${describeOpenFiles(report.openDeviceFiles)}`);
    const own = Number(/(\d+)$/.exec(node)![1]);
    if (minors.length !== 1 || minors[0] !== own) problems.push(`rank ${rank} holds GPU minors ${JSON.stringify(minors)}, expected [${own}]`);
    for (const minor of minors) {
      if (seen.has(minor)) problems.push(`ranks ${seen.get(minor)} and ${rank} both hold GPU minor ${minor}`);
      seen.set(minor, rank);
    }
  });
  console.log(problems.length === 0 ? "\nOK: each rank process holds exactly its own GPU open, and a different one." : `\nFAILED:\n  ${problems.join("\n  ")}`);
  process.exit(problems.length === 0 ? 0 : 1);
}

if (process.argv.includes("--report")) {
  reportThisProcess().then(
    (report) => {
      console.log(JSON.stringify(report));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
} else {
  main();
}
