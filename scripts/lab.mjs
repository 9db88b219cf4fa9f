#!/usr/bin/env node
// `npm run lab` (after `npm run setup`): JupyterLab from .venv on notebooks/,
// seeing this checkout's distlab kernelspec first. Extra arguments go to
// JupyterLab: `npm run lab -- --port 9999`.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const jupyter = join(root, ".venv", "bin", "jupyter");
const jupyterData = join(root, ".venv", "share", "jupyter");

if (!existsSync(jupyter)) {
  console.error("lab: .venv/bin/jupyter is missing; run `npm run setup` first (or `npm run lab`, which does)");
  process.exit(1);
}
if (!existsSync(join(jupyterData, "kernels", "distlab", "kernel.json"))) {
  console.error("lab: the distlab kernelspec is not installed in .venv; run `npm run setup` and read its kernelspec line");
  process.exit(1);
}

const extraArgs = process.argv.slice(2);
const hasDisplay = process.platform === "darwin" || process.platform === "win32" ||
  Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
const args = [
  "lab",
  `--ServerApp.root_dir=${join(root, "notebooks")}`,
  // New notebooks and consoles start on distlab rather than Python.
  "--MappingKernelManager.default_kernel_name=distlab",
  ...(hasDisplay ? [] : ["--no-browser"]),
  // Jupyter refuses to run as root without this (containers, CI machines).
  ...(process.getuid?.() === 0 ? ["--allow-root"] : []),
  ...extraArgs,
];

// JUPYTER_PATH is searched before the user's own kernelspecs, so a `distlab`
// registered elsewhere (another checkout, `--user`) does not shadow this one.
const jupyterPath = [jupyterData, process.env.JUPYTER_PATH].filter(Boolean).join(":");
console.log(`lab: jupyter ${args.join(" ")}`);
const child = spawn(jupyter, args, { cwd: root, stdio: "inherit", env: { ...process.env, JUPYTER_PATH: jupyterPath } });

// Ctrl+C reaches JupyterLab through the terminal's process group; also pass on
// a plain SIGTERM so the server shuts its kernels down.
process.on("SIGTERM", () => child.kill("SIGTERM"));
process.on("SIGINT", () => {});
child.on("close", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
