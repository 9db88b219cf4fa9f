// Step: the Python virtual environment at .venv (JupyterLab, jupyter_client,
// the conformance suite, nbclient, pytest, ipyparallel), created when absent and
// re-synced with requirements-dev.txt only when that file changed.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { hashFiles, stampMatches, writeStamp } from "./stamps.mjs";
import { runCommand, SetupError } from "./process.mjs";

const MINIMUM_PYTHON = [3, 9];

/** The interpreter that creates .venv: $DISTLAB_PYTHON, else python3. */
async function findBasePython() {
  const candidate = process.env.DISTLAB_PYTHON || "python3";
  const version = await runCommand(candidate, ["-c", "import sys; print(sys.version_info[0], sys.version_info[1])"], {
    hint: "install Python 3.9 or newer, or point DISTLAB_PYTHON at one",
  });
  const [major, minor] = version.trim().split(" ").map(Number);
  if (major < MINIMUM_PYTHON[0] || (major === MINIMUM_PYTHON[0] && minor < MINIMUM_PYTHON[1])) {
    throw new SetupError(`${candidate} is Python ${major}.${minor}; JupyterLab needs ${MINIMUM_PYTHON.join(".")} or newer`,
      "install a newer Python and point DISTLAB_PYTHON at it");
  }
  return candidate;
}

export function venvPython(root) {
  return join(root, ".venv", "bin", "python");
}

export const pythonVenvStep = {
  name: "python venv",
  async run({ root }) {
    const python = venvPython(root);
    const requirements = join(root, "requirements-dev.txt");
    let created = false;
    if (!existsSync(python)) {
      if (existsSync(join(root, ".venv"))) {
        throw new SetupError(".venv exists but has no bin/python (a half-created or moved environment)",
          "remove the .venv folder and rerun `npm run setup`");
      }
      await runCommand(await findBasePython(), ["-m", "venv", join(root, ".venv")], {
        cwd: root,
        hint: "on Debian, `apt-get install python3-venv` provides the venv module",
      });
      created = true;
    }
    const stamp = join(root, ".venv", ".distlab-setup", "requirements.sha256");
    const digest = hashFiles([requirements]);
    if (!created && stampMatches(stamp, digest)) return "up to date";

    await runCommand(python, ["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", requirements], {
      cwd: root,
      hint: "check the pip error above (network access to PyPI, pins in requirements-dev.txt)",
    });
    writeStamp(stamp, digest);
    return created ? "created .venv and installed requirements-dev.txt" : "synced with requirements-dev.txt";
  },
};
