// Step: register the `distlab` kernelspec inside .venv, so the JupyterLab and
// jupyter_client of .venv find this checkout's kernel (and no other).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runCommand, SetupError } from "./process.mjs";

export function kernelspecDirectory(root) {
  return join(root, ".venv", "share", "jupyter", "kernels", "distlab");
}

export const kernelspecStep = {
  name: "kernelspec",
  async run({ root }) {
    const cli = join(root, "kernel", "dist", "cli.js");
    if (!existsSync(cli)) return "skipped: kernel/dist/cli.js does not exist yet (the kernel CLI is not built)";
    await runCommand(process.execPath, [cli, "install", "--prefix", join(root, ".venv")], {
      cwd: root,
      hint: "run `node kernel/dist/cli.js install --prefix .venv` by hand to see why it fails",
    });
    const kernelJson = join(kernelspecDirectory(root), "kernel.json");
    if (!existsSync(kernelJson)) {
      throw new SetupError(`the install command succeeded but ${kernelJson} is missing`,
        "the kernel CLI's `install --prefix` must write share/jupyter/kernels/distlab/kernel.json under the prefix");
    }
    return "distlab installed in .venv";
  },
};
