#!/usr/bin/env node
// `npm test` (after `npm run setup`): every test layer in order, each to the
// end even when an earlier one failed, then a summary; exits non-zero if any
// layer failed. Reports go to test-artifacts/ (JUnit XML per layer).
//
// Usage: node scripts/test.mjs [typecheck|unit|kernel|browser ...]   (default: all layers)
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { killProcessesMarkedWith } from "./test/stray-processes.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const artifacts = join(root, "test-artifacts");

// Every process a layer starts (kernels, their workers, engines) inherits this
// marker, so leftovers of this run, and only of this run, can be found and ended.
const runMarker = `DISTLAB_TEST_RUN=${process.pid}-${randomBytes(4).toString("hex")}`;

function findFiles(directory, suffix) {
  if (!existsSync(directory)) return [];
  return readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => relative(root, join(entry.parentPath ?? entry.path, entry.name)))
    .filter((path) => !path.split("/").includes("node_modules"))
    .sort();
}

const layers = [
  {
    // tsx runs tests without type-checking them, so tests and benchmarks get
    // checked here against the kernel's built declarations.
    name: "typecheck",
    describe: "tsc -p tsconfig.json over test/ and bench/",
    command() {
      return [process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.json")]];
    },
  },
  {
    name: "unit",
    describe: "node:test over test/unit/**/*.test.ts",
    command() {
      const files = findFiles(join(root, "test", "unit"), ".test.ts");
      if (files.length === 0) return null;
      return [process.execPath, [
        // The V8 flags the kernelspec and rank processes start with (kernel/dist/v8-start-flags.js, once
        // built); node --test hands its flags to each test file's process.
        ...(existsSync(join(root, "kernel", "dist", "v8-start-flags.js"))
          ? createRequire(import.meta.url)(join(root, "kernel", "dist", "v8-start-flags.js")).v8StartFlags()
          : []),
        "--import", "tsx", "--test", "--test-concurrency=1",
        "--test-reporter=spec", "--test-reporter-destination=stdout",
        "--test-reporter=junit", `--test-reporter-destination=${join(artifacts, "unit.xml")}`,
        ...files,
      ]];
    },
  },
  {
    name: "kernel",
    describe: "pytest test/kernel (protocol conformance, distributed cells, notebooks)",
    command() {
      if (findFiles(join(root, "test", "kernel"), ".py").every((path) => !/\/test_[^/]*\.py$/.test(path))) return null;
      return [join(root, ".venv", "bin", "python"), [
        "-m", "pytest", "test/kernel", "-q", "-p", "no:cacheprovider",
        `--junitxml=${join(artifacts, "kernel.xml")}`,
      ]];
    },
  },
  {
    name: "browser",
    describe: "Playwright in Chromium against a real JupyterLab (test/browser)",
    command() {
      if (findFiles(join(root, "test", "browser"), ".spec.ts").length === 0) return null;
      return [join(root, "node_modules", ".bin", "playwright"), ["test", "-c", "test/browser"]];
    },
  },
];

function runLayer(command, args) {
  return new Promise((resolveExit) => {
    const [name, value] = runMarker.split("=");
    const child = spawn(command, args, {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, [name]: value, DISTLAB_TEST_ARTIFACTS: artifacts },
    });
    child.on("error", (error) => {
      console.error(`test: could not start ${command}: ${error.message}`);
      resolveExit(127);
    });
    child.on("close", (code, signal) => resolveExit(code ?? (signal ? 128 : 1)));
  });
}

async function main() {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !layers.some((layer) => layer.name === name));
  if (unknown.length > 0) {
    console.error(`test: unknown layer ${unknown.join(", ")}; layers are: ${layers.map((l) => l.name).join(", ")}`);
    process.exit(2);
  }
  mkdirSync(artifacts, { recursive: true });
  const summary = [];
  for (const layer of layers.filter((l) => wanted.length === 0 || wanted.includes(l.name))) {
    const started = Date.now();
    const command = layer.command();
    if (!command) {
      summary.push({ layer, outcome: "no tests found", failed: false, seconds: 0 });
      continue;
    }
    console.log(`\n=== test layer: ${layer.name} (${layer.describe}) ===`);
    const exitCode = await runLayer(...command);
    const ended = killProcessesMarkedWith(runMarker);
    const strays = ended.length > 0 ? `; ended ${ended.length} stray process(es): ${ended.join(", ")}` : "";
    const seconds = (Date.now() - started) / 1000;
    summary.push({ layer, outcome: (exitCode === 0 ? "passed" : `FAILED (exit ${exitCode})`) + strays, failed: exitCode !== 0, seconds });
  }
  console.log("\n=== test summary ===");
  for (const { layer, outcome, seconds } of summary) {
    console.log(`${layer.name.padEnd(10)} ${outcome} (${seconds.toFixed(1)}s) - ${layer.describe}`);
  }
  console.log(`reports: ${relative(root, artifacts)}/`);
  process.exit(summary.some((entry) => entry.failed) ? 1 : 0);
}

await main();
