// Step: build the JupyterLab timeline extension (extension/) into a prebuilt
// labextension and install it, with the kernelspec, into .venv through the
// root pyproject.toml (`pip install .`), the way a user's environment gets it.
// Skips both while the extension's inputs hash the same and .venv has it.
//
// The labextension is built by calling @jupyterlab/builder's script directly:
// `jupyter labextension build` would run `jlpm` (Yarn) when the builder is
// hoisted to the npm workspace root, turning the workspace into a Yarn one.
//
// `node scripts/setup/extension.mjs build` builds the labextension only
// (pyproject.toml's build hook calls it through `npm run build:extension`).
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand, SetupError } from "./process.mjs";
import { hashFiles, stampMatches, writeStamp } from "./stamps.mjs";

const LABEXTENSION_NAME = "@distlab/timeline";

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)]).sort();
}

/** Everything the built labextension depends on. */
export function labextensionInputs(root) {
  const ext = join(root, "extension");
  return [
    ...["package.json", "tsconfig.json", "webpack.config.js"].map((f) => join(ext, f)),
    ...listFiles(join(ext, "src")),
    ...listFiles(join(ext, "style")),
    // the payload types the renderer imports from the kernel
    ...["span.ts", "summary.ts", "payload.ts", "category-colors.ts", "mesh-dimension.ts"].map((f) => join(root, "kernel", "src", "trace", f)),
    join(root, "node_modules", "plotly.js-dist-min", "package.json"),
    join(root, "node_modules", "@jupyterlab", "builder", "package.json"),
  ];
}

/** Everything else the wheel depends on (the kernelspec points at kernel/dist/cli.js). */
function wheelInputs(root) {
  return [join(root, "extension", "install.json"), join(root, "pyproject.toml"), join(root, "hatch_build.py"), join(root, "kernel", "dist", "cli.js")];
}

async function jupyterlabStagingDir(root) {
  const python = join(root, ".venv", "bin", "python");
  const out = await runCommand(python, ["-c", "import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))"], {
    hint: "JupyterLab must be installed in .venv first (the python venv step)",
  });
  return out.trim().split("\n").pop();
}

/** tsc, then webpack through @jupyterlab/builder into extension/labextension. */
export async function buildLabextension(root) {
  const builder = join(root, "node_modules", "@jupyterlab", "builder", "lib", "build-labextension.js");
  if (!existsSync(builder)) {
    throw new SetupError(`${builder} is missing`, "run `npm install` at the repository root (extension/ is an npm workspace)");
  }
  await runCommand(join(root, "node_modules", ".bin", "tsc"), ["-b", join(root, "extension")], { cwd: root, hint: "fix the TypeScript errors in extension/src" });
  const staging = await jupyterlabStagingDir(root);
  await runCommand(process.execPath, [builder, "--core-path", staging, join(root, "extension")], {
    cwd: root,
    hint: "run `node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path <jupyterlab/staging> extension` to see the webpack error",
  });
}

/** The kernelspec that goes into the wheel (hatch_build.py), when the kernel CLI is built. */
async function stageKernelspec(root) {
  const cli = join(root, "kernel", "dist", "cli.js");
  if (!existsSync(cli)) return false;
  const buildDir = join(root, "build");
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(join(buildDir, ".gitignore"), "*\n");
  await runCommand(process.execPath, [cli, "install", "--prefix", join(buildDir, "kernelspec-prefix")], { cwd: root });
  return true;
}

async function ensurePythonBuildTools(python) {
  try {
    await runCommand(python, ["-c", "import hatchling, hatch_jupyter_builder"]);
  } catch {
    await runCommand(python, ["-m", "pip", "install", "-q", "hatchling>=1.21", "hatch-jupyter-builder>=0.9"], {
      hint: "pip must reach PyPI to install hatchling and hatch-jupyter-builder",
    });
  }
}

/** Builds the labextension unless its inputs hash as at the last build; true when it built. */
export async function ensureLabextensionBuilt(root) {
  const stamp = join(root, "node_modules", ".distlab-setup", "extension-build.sha256");
  const digest = hashFiles(labextensionInputs(root));
  if (stampMatches(stamp, digest) && existsSync(join(root, "extension", "labextension", "package.json"))) return false;
  await buildLabextension(root);
  writeStamp(stamp, digest);
  return true;
}

export const extensionStep = {
  name: "jupyterlab extension",
  async run({ root }) {
    const built = join(root, "extension", "labextension", "package.json");
    const installed = join(root, ".venv", "share", "jupyter", "labextensions", LABEXTENSION_NAME, "package.json");
    const rebuilt = await ensureLabextensionBuilt(root);
    // The built package.json names the hashed bundle files, so it stands for the whole build.
    const installDigest = hashFiles([...wheelInputs(root), built]);
    const installStamp = join(root, "node_modules", ".distlab-setup", "extension-install.sha256");
    if (stampMatches(installStamp, installDigest) && existsSync(installed)) return "up to date";
    const withKernelspec = await stageKernelspec(root);
    const python = join(root, ".venv", "bin", "python");
    await ensurePythonBuildTools(python);
    // --no-build-isolation: the build tools are in .venv already; --no-deps: JupyterLab is too.
    await runCommand(python, ["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--force-reinstall", root], {
      cwd: root,
      hint: "run `.venv/bin/pip install --no-build-isolation .` to see why the wheel did not build",
    });
    if (!existsSync(installed)) {
      throw new SetupError(`pip installed distlab but ${installed} is missing`, "check pyproject.toml's shared-data and artifacts");
    }
    writeStamp(installStamp, installDigest);
    return `${rebuilt ? "built, " : ""}installed ${LABEXTENSION_NAME}${withKernelspec ? " and the kernelspec" : ""} into .venv`;
  },
};

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === "build") {
  await ensureLabextensionBuilt(resolve(dirname(fileURLToPath(import.meta.url)), "..", ".."));
}
