/**
 * Giving each `--backend gpus` rank exactly one GPU.
 *
 * Dawn (the webgpu npm package) picks the first adapter matching a name, so
 * among identical GPUs it always takes GPU 0, and NVIDIA's Vulkan driver
 * ignores CUDA_VISIBLE_DEVICES. What works is what container runtimes do:
 * rank i starts in a private mount namespace in which the device node of
 * every other GPU is covered by /dev/null, so the driver finds one GPU:
 *
 *   unshare -m sh -c 'mount --bind /dev/null /dev/nvidia0 && exec "$0" "$@"' node ... process-entry.js
 *
 * /dev/nvidiactl, /dev/nvidia-uvm and the rank's own /dev/nvidiaI stay.
 * Mounting needs root; elsewhere `unshare -r -m` (a user namespace in which
 * the user is root) does it where unprivileged user namespaces are allowed.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { NotAvailableError } from "../../../errors";
import type { RankLaunch } from "../processes/process-rank-handle";

/** A GPU's device node name: nvidia0, nvidia1, ... (not nvidiactl, nvidia-uvm, nvidia-modeset). */
const GPU_NODE = /^nvidia(\d+)$/;

/** How long the permission probe may take (milliseconds). */
const PROBE_TIMEOUT_MS = 10_000;

/** The GPU device nodes in `devDir` (/dev/nvidia0, /dev/nvidia1, ...), sorted by number. */
export function listGpuDeviceNodes(devDir = "/dev"): string[] {
  let names: string[];
  try {
    names = readdirSync(devDir);
  } catch {
    return [];
  }
  return names
    .map((name) => GPU_NODE.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((match) => join(devDir, match[0]));
}

/** `unshare` flags that give a process a private mount namespace it may mount in. */
export function unshareFlags(isRoot = process.getuid?.() === 0): string[] {
  return isRoot ? ["-m"] : ["-r", "-m"];
}

/**
 * How rank process `keep` starts with only GPU `nodes[keep]` visible:
 * `nodeCommand` (node, its flags, the rank entry) run through unshare and a
 * shell that covers every other node first. With one GPU nothing is hidden
 * and node starts directly.
 */
export function gpuRankLaunch(nodeCommand: readonly string[], nodes: readonly string[], keep: number, flags: readonly string[] = unshareFlags()): RankLaunch {
  if (!Number.isInteger(keep) || keep < 0 || keep >= nodes.length) {
    throw new RangeError(`gpuRankLaunch: keep must be a GPU index in 0..${nodes.length - 1}, got ${keep}`);
  }
  const [node, ...args] = nodeCommand;
  if (node === undefined) throw new TypeError("gpuRankLaunch: nodeCommand is empty");
  const hidden = nodes.filter((_, index) => index !== keep);
  if (hidden.length === 0) return { command: node, args };
  // The node command follows as the shell's $0 and $@, so its paths need no quoting.
  const script = [...hidden.map((path) => `mount --bind /dev/null ${shellQuote(path)}`), 'exec "$0" "$@"'].join(" && ");
  return { command: "unshare", args: [...flags, "sh", "-c", script, node, ...args] };
}

/**
 * Fails unless this machine lets us hide a GPU in a private mount namespace
 * (tries it once on `nodes[0]`: the mount vanishes with the probe).
 */
export function checkGpuIsolation(nodes: readonly string[], flags: readonly string[] = unshareFlags()): void {
  if (nodes.length < 2) return;
  const probe = spawnSync("unshare", [...flags, "sh", "-c", `mount --bind /dev/null ${shellQuote(nodes[0]!)}`], { encoding: "utf8", timeout: PROBE_TIMEOUT_MS });
  if (probe.status === 0) return;
  const reason = probe.error ? probe.error.message : (probe.stderr || probe.stdout || `exit status ${probe.status}`).trim();
  throw new NotAvailableError(
    `--backend gpus: cannot give each rank its own GPU: \`unshare ${flags.join(" ")}\` with \`mount --bind /dev/null ${nodes[0]}\` failed (${reason}); ` +
      "hiding the other GPUs from a rank needs root, or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1). " +
      "Use --backend processes (ranks share GPU 0) or --backend threads",
  );
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
