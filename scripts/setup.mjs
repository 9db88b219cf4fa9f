#!/usr/bin/env node
// `npm run setup`: everything a fresh clone needs before `npm run lab`, in
// order, each step skipping its work when its inputs are unchanged: Node 20+
// and Python 3.9+ suffice, with no root, no Debian and no browser.
// `node scripts/setup.mjs --browser` (what `npm run test:browser` runs) adds the
// Chromium that the browser tests drive; `--tests` (what `npm test` runs) adds it
// and the Debian packages of the multi-host tests.
// Prints one line per step; a failure names the step and the fix.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { browserStep } from "./setup/browser.mjs";
import { compilerSnapshotsStep } from "./setup/compiler-snapshots.mjs";
import { ensureDebianPackages } from "./setup/debian.mjs";
import { extensionStep } from "./setup/extension.mjs";
import { kernelspecStep } from "./setup/kernelspec.mjs";
import { nativeAddonsStep } from "./setup/native-addons.mjs";
import { nodePackagesStep } from "./setup/node-packages.mjs";
import { pythonVenvStep } from "./setup/python-venv.mjs";
import { typescriptStep } from "./setup/typescript.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const USAGE =
  "usage: node scripts/setup.mjs [--browser | --tests]   (--browser: also the Chromium the browser tests drive;\n" +
  "       --tests: that Chromium, the system packages of the multi-host tests, OpenSSH, iproute2, Slurm, munge and Open MPI,\n" +
  "       and OpenBLAS for the unit tests of the BLAS products)";
const flags = process.argv.slice(2);
const unknownFlags = flags.filter((flag) => flag !== "--browser" && flag !== "--tests");
if (unknownFlags.length > 0) {
  console.error(`setup: unknown argument ${unknownFlags.join(" ")}\n${USAGE}`);
  process.exit(2);
}
// The multi-host tests run Debian's sshd in network namespaces (test/kernel/netns_hosts.py), and the
// launcher tests a single-node Slurm and Open MPI's mpirun (test/kernel/slurm_cluster.py installs them too).
const HOST_TEST_DEBIAN_PACKAGES = ["openssh-client", "openssh-server", "iproute2", "slurm-wlm", "munge", "openmpi-bin"];
// The unit tests check the matrix products through both kinds of BLAS the kernel loads (kernel/src/compute/cpu-blas.ts: oneDNN, OpenBLAS) against the wasm kernel.
const COMPUTE_TEST_DEBIAN_PACKAGES = ["libdnnl2", "libopenblas0"];
const forTests = flags.includes("--tests");

const steps = [
  ...(flags.includes("--browser") || forTests ? [browserStep] : []),
  ...(forTests ? [{ name: "host test packages", run: () => ensureDebianPackages(HOST_TEST_DEBIAN_PACKAGES) }] : []),
  ...(forTests ? [{ name: "compute test packages", run: () => ensureDebianPackages(COMPUTE_TEST_DEBIAN_PACKAGES) }] : []),
  nodePackagesStep,
  typescriptStep,
  nativeAddonsStep,
  pythonVenvStep,
  extensionStep,
  kernelspecStep,
  compilerSnapshotsStep,
];

// Two set-ups of one checkout at once (say `npm test` in two terminals) would
// race on node_modules and .venv, so the whole run holds a lock per checkout.
function rerunUnderLock() {
  const lockPath = join(tmpdir(), `distlab-setup-${createHash("sha1").update(root).digest("hex").slice(0, 12)}.lock`);
  const flockAvailable = spawnSync("flock", ["--version"], { stdio: "ignore" }).status === 0;
  if (!flockAvailable) return false;
  const result = spawnSync("flock", [lockPath, process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, DISTLAB_SETUP_LOCKED: "1" },
  });
  process.exit(result.status ?? 1);
}

async function main() {
  if (!process.env.DISTLAB_SETUP_LOCKED) rerunUnderLock();
  if (!existsSync(join(root, "package.json"))) {
    console.error(`setup: ${root} does not look like the distlab checkout (no package.json)`);
    process.exit(1);
  }
  const started = Date.now();
  for (const step of steps) {
    const stepStarted = Date.now();
    try {
      const outcome = await step.run({ root });
      console.log(`setup: ${step.name.padEnd(22)} ${outcome} (${seconds(stepStarted)})`);
    } catch (error) {
      console.error(`setup: ${step.name.padEnd(22)} FAILED (${seconds(stepStarted)})`);
      console.error(`  ${error.message}`);
      if (error.hint) console.error(`  what to do: ${error.hint}`);
      process.exit(1);
    }
  }
  console.log(`setup: done in ${seconds(started)}`);
}

function seconds(since) {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

await main();
