// Debian packages that tests and benchmarks take from the system: Chromium for
// the browser tests when no other Chromium is found (browser.mjs), PyTorch for
// the benchmark baselines (bench-baselines.mjs). `npm run lab` needs none of
// them. Checks with dpkg first, so the common case costs one dpkg-query and
// needs no root.
import { runCommand, SetupError } from "./process.mjs";

/** The names among `packages` that dpkg does not report as installed. */
export async function missingDebianPackages(packages) {
  const missing = [];
  for (const name of packages) {
    try {
      const status = await runCommand("dpkg-query", ["-W", "-f=${Status}", name]);
      if (!status.includes("install ok installed")) missing.push(name);
    } catch {
      missing.push(name); // dpkg-query exits 1 for a package it has never seen.
    }
  }
  return missing;
}

/**
 * Installs whatever of `packages` is missing through apt-get. Resolves to a
 * one-line description of what it did. Needs root only when something is missing.
 */
export async function ensureDebianPackages(packages) {
  if (packages.length === 0) return "nothing required";
  const missing = await missingDebianPackages(packages);
  if (missing.length === 0) return `${packages.length} present`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new SetupError(`missing Debian packages: ${missing.join(" ")} (installing them needs root)`,
      `run \`sudo apt-get update && sudo apt-get install -y ${missing.join(" ")}\`, then rerun \`npm run setup\``);
  }
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  // Waits for a concurrent apt/dpkg instead of failing on its lock.
  const lockWait = ["-o", "DPkg::Lock::Timeout=600"];
  const hint = "check the apt-get error above (package names, network access to the Debian mirror)";
  await runCommand("apt-get", [...lockWait, "update"], { env, hint });
  await runCommand("apt-get", [...lockWait, "install", "-y", "--no-install-recommends", ...missing], { env, hint });
  return `installed ${missing.join(" ")}`;
}

export function debianPackagesStep(packages) {
  return { name: "debian packages", run: () => ensureDebianPackages(packages) };
}
