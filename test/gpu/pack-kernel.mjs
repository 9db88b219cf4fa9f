// Packs the built kernel and the production packages it loads into
// .device/kernel.tar.xz, so a GPU machine with no network and no npm can run
// the real kernel (test/gpu/kernel-e2e.sh). Pruned to what a Linux x64
// machine loads: each @tensorflow package's Node bundle (its `main`) and its
// .d.ts files (cells are type-checked against them), the wasm binaries,
// Dawn's linux-x64 dawn.node, zeromq's linux build; no source maps, browser
// bundles or other platforms' binaries. Also packs the Python client:
// jupyter_client and the pure-Python packages it imports, copied from .venv
// (.device/py.tar.xz), and pyzmq's wheel for the GPU machine's Python 3.12
// (.device/whl/, from PyPI through pip).
// Usage: npm run build && node test/gpu/pack-kernel.mjs
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const stage = path.join(root, ".device/kernel-stage");
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });

const list = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable", "-w", "kernel"], { cwd: root, encoding: "utf8" })
  .split("\n").map((p) => path.relative(root, p)).filter((p) => p.startsWith("node_modules/"));
const packages = [...new Set(list)].filter((p) => existsSync(path.join(root, p)));

/** Whether `rel` (a path inside package `pkg`) is needed on the GPU machine. */
function keep(pkg, rel, main) {
  if (rel.endsWith(".map") || /\.min\.js(\.html)?$/.test(rel)) return false;
  if (pkg.startsWith("node_modules/@tensorflow/")) {
    return rel === "package.json" || rel === main || rel.endsWith(".d.ts") || rel.startsWith("wasm-out/") || /^dist\/[^/]*\.wasm$/.test(rel);
  }
  if (pkg === "node_modules/webgpu") return rel === "package.json" || rel === "index.js" || rel.startsWith("dist/linux-x64/") || rel.endsWith(".d.ts");
  if (pkg === "node_modules/zeromq") return !rel.startsWith("src/") && !rel.startsWith("build/darwin") && !rel.startsWith("build/win32") && !rel.startsWith("script/");
  return true;
}

function walk(dir, base = dir, out = []) {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (name === "node_modules") continue; // nested packages are in the list themselves
    if (statSync(full).isDirectory()) walk(full, base, out);
    else out.push(path.relative(base, full));
  }
  return out;
}

let files = 0;
for (const pkg of packages) {
  const json = JSON.parse(readFileSync(path.join(root, pkg, "package.json"), "utf8"));
  const main = path.normalize(typeof json.main === "string" ? json.main : "index.js");
  for (const rel of walk(path.join(root, pkg))) {
    if (!keep(pkg, rel, main)) continue;
    cpSync(path.join(root, pkg, rel), path.join(stage, pkg, rel));
    files += 1;
  }
}
for (const part of ["kernel/package.json", "kernel/dist", "kernel/data"]) if (existsSync(path.join(root, part))) cpSync(path.join(root, part), path.join(stage, part), { recursive: true });
// The workspace link node_modules/distlab -> kernel, as npm makes it.
execFileSync("ln", ["-sfn", "../kernel", path.join(stage, "node_modules/distlab")]);
execFileSync("tar", ["-C", stage, "-cJf", path.join(root, ".device/kernel.tar.xz"), "."], { env: { ...process.env, XZ_OPT: "-6 -T2" } });
rmSync(stage, { recursive: true, force: true });

// The Python client, copied from .venv's site-packages.
const site = execFileSync(path.join(root, ".venv/bin/python"), ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], { encoding: "utf8" }).trim();
const py = path.join(root, ".device/py");
rmSync(py, { recursive: true, force: true });
mkdirSync(py, { recursive: true });
for (const name of readdirSync(site)) {
  // With their dist-info: jupyter_client finds its kernel provisioner through entry points.
  if (/^(jupyter_client|jupyter_core|traitlets|tornado|platformdirs|dateutil|python_dateutil)(-[^/]*\.dist-info)?$/.test(name)) cpSync(path.join(site, name), path.join(py, name), { recursive: true });
}
execFileSync("tar", ["-C", py, "-cJf", path.join(root, ".device/py.tar.xz"), "."]);
rmSync(py, { recursive: true, force: true });
const pyzmq = execFileSync(path.join(root, ".venv/bin/python"), ["-c", "import zmq; print(zmq.__version__)"], { encoding: "utf8" }).trim();
rmSync(path.join(root, ".device/whl"), { recursive: true, force: true });
execFileSync(path.join(root, ".venv/bin/python"), [
  "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
  ...["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"].flatMap((p) => ["--platform", p]),
  "-d", path.join(root, ".device/whl"), `pyzmq==${pyzmq}`,
], { stdio: "inherit" });
const size = (f) => `${(statSync(path.join(root, f)).size / 2 ** 20).toFixed(1)} MiB`;
console.log(`packed ${packages.length} packages (${files} files): .device/kernel.tar.xz ${size(".device/kernel.tar.xz")}, .device/py.tar.xz ${size(".device/py.tar.xz")}`);
